import { describe, expect, it } from 'vitest';
import { geoFromDatabase, geoFromHeaders } from '../../../src/intake/geo.js';

describe('geoFromHeaders', () => {
  it('reads Cloudflare, Vercel (URL-encoded) and CloudFront headers', () => {
    expect(geoFromHeaders({ 'cf-ipcountry': 'kr', 'cf-region': 'Seoul', 'cf-ipcity': 'Seoul' })).toEqual({ country: 'KR', region: 'Seoul', city: 'Seoul' });
    expect(geoFromHeaders({ 'x-vercel-ip-country': 'BR', 'x-vercel-ip-country-region': 'SP', 'x-vercel-ip-city': 'S%C3%A3o%20Paulo' })).toEqual({ country: 'BR', region: 'SP', city: 'São Paulo' });
    expect(geoFromHeaders({ 'cloudfront-viewer-country': 'DE', 'cloudfront-viewer-city': 'Berlin' })).toEqual({ country: 'DE', city: 'Berlin' });
  });

  it("drops Cloudflare's unknown (XX) and Tor (T1) markers and anything that is not a country code", () => {
    expect(geoFromHeaders({ 'cf-ipcountry': 'XX' })).toEqual({});
    expect(geoFromHeaders({ 'cf-ipcountry': 'T1' })).toEqual({});
    expect(geoFromHeaders({ 'x-country-code': '12' })).toEqual({});
  });
});

describe('geoFromDatabase', () => {
  const reader = {
    get: (ip: string) => {
      if (ip === 'bad') throw new Error('not an IP');
      return ip === '81.2.69.160'
        ? ({ country: { iso_code: 'GB' }, subdivisions: [{ iso_code: 'ENG', names: { en: 'England' } }], city: { names: { en: 'London' } } } as never)
        : null;
    },
  };

  it('reads country, first subdivision and city of a City database answer', () => {
    expect(geoFromDatabase(reader, '81.2.69.160')).toEqual({ country: 'GB', region: 'England', city: 'London' });
  });

  it('gives nothing for an unknown address, a non-address or no address', () => {
    expect(geoFromDatabase(reader, '10.0.0.1')).toEqual({});
    expect(geoFromDatabase(reader, 'bad')).toEqual({});
    expect(geoFromDatabase(reader, undefined)).toEqual({});
  });
});
