import { describe, expect, it } from 'vitest';
import { botVerdict, isSecureRequest } from '../../../src/intake/bots.js';

const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';
const SAFARI_15 = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.6 Safari/605.1.15';
const browserHeaders = { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'cors', 'sec-ch-ua': '"Chromium";v="131"' };

describe('botVerdict', () => {
  it('drops what the user agent list calls a bot, HeadlessChrome included', () => {
    expect(botVerdict(CHROME.replace('Chrome/', 'HeadlessChrome/'), browserHeaders, {}, true)).toEqual({ drop: 'user-agent', flags: [] });
    expect(botVerdict('Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', {}, {}, true).drop).toBe('user-agent');
  });

  it('passes a browser that sends what its kind sends', () => {
    expect(botVerdict(CHROME, browserHeaders, {}, true)).toEqual({ drop: undefined, flags: [] });
    expect(botVerdict(FIREFOX, { 'sec-fetch-site': 'cross-site' }, {}, true)).toEqual({ drop: undefined, flags: [] });
  });

  it('flags webdriver, missing fetch metadata and missing client hints, and never drops for them', () => {
    expect(botVerdict(CHROME, {}, { __webdriver: true }, true)).toEqual({ drop: undefined, flags: ['webdriver', 'no-fetch-metadata', 'no-client-hints'] });
    expect(botVerdict(FIREFOX, {}, {}, true).flags).toEqual(['no-fetch-metadata']);
  });

  it('reads no header signal over plain HTTP, where browsers do not send them, nor for browsers that never do', () => {
    expect(botVerdict(CHROME, {}, {}, false).flags).toEqual([]);
    expect(botVerdict(SAFARI_15, {}, {}, true).flags).toEqual([]);
  });
});

describe('isSecureRequest', () => {
  it('believes X-Forwarded-Proto only from a trusted proxy, and takes loopback as secure', () => {
    expect(isSecureRequest({ 'x-forwarded-proto': 'https' }, '10.0.0.2', true)).toBe(true);
    expect(isSecureRequest({ 'x-forwarded-proto': 'https' }, '10.0.0.2', false)).toBe(false);
    expect(isSecureRequest({}, '127.0.0.1', false)).toBe(true);
    expect(isSecureRequest({}, '203.0.113.5', false)).toBe(false);
  });
});
