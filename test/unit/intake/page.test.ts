import { describe, expect, it } from 'vitest';
import { parsePage } from '../../../src/intake/page.js';

describe('parsePage', () => {
  it('splits a page URL into origin, decoded path and the five UTM fields', () => {
    expect(parsePage('https://shop.example:8443/caf%C3%A9/list?utm_source=news&utm_medium=email&utm_campaign=spring&utm_term=hats&utm_content=top&x=1#frag')).toEqual({
      origin: 'https://shop.example:8443',
      path: '/café/list',
      utmSource: 'news',
      utmMedium: 'email',
      utmCampaign: 'spring',
      utmTerm: 'hats',
      utmContent: 'top',
    });
  });

  it('leaves out empty UTM values and keeps a malformed escape as sent', () => {
    expect(parsePage('http://a.example/%E0%A4%A?utm_source=')).toEqual({ origin: 'http://a.example', path: '/%E0%A4%A' });
  });

  it('keeps a screen name that is not a web URL as the path, with no origin', () => {
    expect(parsePage('/settings')).toEqual({ path: '/settings' });
    expect(parsePage('app://home')).toEqual({ path: 'app://home' });
    expect(parsePage(undefined)).toEqual({});
  });
});
