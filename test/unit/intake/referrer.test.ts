import { describe, expect, it } from 'vitest';
import { classifyReferrer, lookupHost } from '../../../src/intake/referrer.js';

describe('classifyReferrer', () => {
  it.each([
    ['https://www.google.com/', 'Google', 'search'],
    ['https://www.google.co.uk/search?q=hats', 'Google', 'search'],
    ['https://news.google.de/', 'Google', 'search'],
    ['https://mail.google.com/mail/u/0/', 'Gmail', 'email'],
    ['https://l.facebook.com/l.php?u=x', 'Facebook', 'social'],
    ['https://t.co/abc', 'X', 'social'],
    ['https://old.reddit.com/r/x', 'Reddit', 'social'],
    ['https://m.youtube.com/watch?v=1', 'YouTube', 'video'],
    ['https://chatgpt.com/', 'ChatGPT', 'ai'],
    ['https://www.bing.com/search?q=1', 'Bing', 'search'],
    ['https://search.naver.com/search.naver?query=x', 'Naver', 'search'],
    ['https://blog.someone.example/post', 'blog.someone.example', 'link'],
    ['android-app://com.google.android.gm/', 'Gmail', 'email'],
  ])('names %s as %s (%s)', (referrer, name, type) => {
    expect(classifyReferrer(referrer, 'https://shop.example')).toEqual({ referrer, referrerName: name, referrerType: type });
  });

  it('treats a referrer on the page origin, or the same host with or without www, as internal: no source', () => {
    expect(classifyReferrer('https://shop.example/cart', 'https://shop.example')).toEqual({});
    expect(classifyReferrer('https://www.shop.example/cart', 'https://shop.example')).toEqual({});
  });

  it('gives nothing for a direct visit or a referrer that is not a URL', () => {
    expect(classifyReferrer('', 'https://shop.example')).toEqual({});
    expect(classifyReferrer('not a url', undefined)).toEqual({});
  });

  it('does not take a brand for a host that only contains it', () => {
    expect(lookupHost('google.evil.example')).toBeUndefined();
    expect(lookupHost('notgoogle.com')).toBeUndefined();
  });
});
