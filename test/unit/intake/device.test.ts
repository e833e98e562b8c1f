import { describe, expect, it } from 'vitest';
import { isBot, isProgramAgent, isServerAgent, parseDevice, withOverrides } from '../../../src/intake/device.js';

const CHROME_LINUX = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const IPHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';
const IPAD = 'Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1';
const PIXEL = 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36';

describe('parseDevice', () => {
  it('reads a desktop browser', () => {
    expect(parseDevice(CHROME_LINUX)).toEqual({ os: 'Linux', browser: 'Chrome', browserVersion: '131.0.0.0', device: 'desktop' });
  });

  it('reads phones and tablets with brand and model', () => {
    expect(parseDevice(IPHONE)).toMatchObject({ os: 'iOS', osVersion: '17.5', browser: 'Mobile Safari', device: 'mobile', brand: 'Apple', model: 'iPhone' });
    expect(parseDevice(IPAD)).toMatchObject({ os: 'iOS', device: 'tablet', brand: 'Apple', model: 'iPad' });
    expect(parseDevice(PIXEL)).toMatchObject({ os: 'Android', osVersion: '14', browser: 'Chrome', device: 'mobile', brand: 'Google', model: 'Pixel 8' });
  });

  it('gives nothing for an empty user agent', () => {
    expect(parseDevice('')).toEqual({});
  });
});

describe('isBot', () => {
  it.each([
    'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36',
    'curl/8.5.0',
    '',
  ])('recognises %j as a bot', (ua) => expect(isBot(ua)).toBe(true));

  it('lets real browsers through', () => {
    for (const ua of [CHROME_LINUX, IPHONE, IPAD, PIXEL]) expect(isBot(ua)).toBe(false);
  });
});

describe('the remembered answers', () => {
  it('answers isBot and parseDevice the same for a user agent seen before, also after 5 000 others pushed it out', () => {
    const crawler = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
    const first = [isBot(crawler), isBot(CHROME_LINUX), parseDevice(IPHONE)];
    for (let i = 0; i < 5_000; i += 1) isBot(`${CHROME_LINUX} build/${i}`);
    expect([isBot(crawler), isBot(CHROME_LINUX), parseDevice(IPHONE)]).toEqual(first);
    expect(first.slice(0, 2)).toEqual([true, false]);
  });
});

describe('isServerAgent and isProgramAgent (who speaks for itself among callers with the secret)', () => {
  it("takes a program's own name/version, or a user agent with no browser, OS or device, for a server", () => {
    for (const ua of ['', 'node', 'undici', 'curl/8.1.2', '@openpanel/sdk/1.3.1', 'Go-http-client/1.1']) {
      expect(isProgramAgent(ua), ua).toBe(true);
      expect(isServerAgent(ua), ua).toBe(true);
    }
    expect(isServerAgent('Mozilla/5.0 (compatible; SomeService)')).toBe(true);
  });

  it("takes a browser's or an app's user agent for a visitor", () => {
    for (const ua of [
      'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
      'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
      'MyApp/1.0 (iPhone; iOS 17.0; Scale/3.00)',
    ]) {
      expect(isServerAgent(ua), ua).toBe(false);
      expect(isProgramAgent(ua), ua).toBe(false);
    }
  });
});

describe('withOverrides', () => {
  it('puts the non-empty __os … __model properties in place of the parsed fields, cut to the field limit', () => {
    const parsed = parseDevice('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36');
    expect(withOverrides(parsed, { __os: 'Android', __osVersion: '', __model: 'x'.repeat(100), other: 'kept out' })).toEqual({ ...parsed, os: 'Android', model: 'x'.repeat(64) });
  });
});
