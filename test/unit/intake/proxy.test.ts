import { describe, expect, it } from 'vitest';
import { isCountryCode } from '../../../src/intake/geo.js';
import { clientAddress, parseProxyTrust, plainIp } from '../../../src/intake/proxy.js';

describe('parseProxyTrust', () => {
  it('reads false, true, a hop count, or addresses and CIDR ranges, and names what is neither', () => {
    expect(parseProxyTrust('false')).toBe(0);
    expect(parseProxyTrust('true')).toBe(1);
    expect(parseProxyTrust('2')).toBe(2);
    expect(parseProxyTrust('10.0.0.0/8, 127.0.0.1,::1')).toEqual(['10.0.0.0/8', '127.0.0.1', '::1']);
    expect(parseProxyTrust('10.0.0.0/33')).toMatch(/"10.0.0.0\/33" is neither an IP address nor a CIDR range/);
    expect(parseProxyTrust('proxy.local')).toMatch(/is neither/);
    expect(parseProxyTrust('99')).toMatch(/hop count from 0 to 16/);
  });
});

describe('clientAddress', () => {
  it('is the socket peer when no proxy is trusted, whatever the headers say', () => {
    expect(clientAddress('::ffff:127.0.0.1', '198.51.100.1', 0)).toBe('127.0.0.1');
  });

  it('behind one trusted hop is the address that proxy added, not one the client put in front', () => {
    expect(clientAddress('10.0.0.2', '6.6.6.6, 198.51.100.7', 1)).toBe('198.51.100.7');
    expect(clientAddress('10.0.0.2', '198.51.100.7', 1)).toBe('198.51.100.7');
    expect(clientAddress('10.0.0.2', undefined, 1)).toBe('10.0.0.2');
    expect(clientAddress('10.0.0.3', '6.6.6.6, 198.51.100.7, 10.0.0.2', 2)).toBe('198.51.100.7');
  });

  it('with trusted ranges walks back while the address is one of them', () => {
    expect(clientAddress('10.0.0.2', '6.6.6.6, 198.51.100.7, 10.1.2.3', ['10.0.0.0/8'])).toBe('198.51.100.7');
    expect(clientAddress('203.0.113.5', '6.6.6.6', ['10.0.0.0/8'])).toBe('203.0.113.5');
    expect(clientAddress('::ffff:10.0.0.2', '198.51.100.7', ['10.0.0.0/8'])).toBe('198.51.100.7');
  });

  it('stops at an entry that is no IP address', () => {
    expect(clientAddress('127.0.0.1', '<script>not-an-ip', 1)).toBe('127.0.0.1');
    expect(clientAddress('127.0.0.1', '198.51.100.7, <b>', 2)).toBe('127.0.0.1');
  });
});

describe('plainIp and isCountryCode', () => {
  it('keeps real addresses in their plain form and drops the rest', () => {
    expect(plainIp('::ffff:1.2.3.4')).toBe('1.2.3.4');
    expect(plainIp(' 2001:db8::1 ')).toBe('2001:db8::1');
    expect(plainIp('1.2.3.999')).toBeUndefined();
    expect(plainIp('')).toBeUndefined();
  });

  it('takes ISO 3166-1 countries, not XX, T1, ZZ or unassigned pairs', () => {
    expect(['DE', 'US', 'KR', 'XK'].map(isCountryCode)).toEqual([true, true, true, true]);
    expect(['XX', 'T1', 'ZZ', 'AA', 'QM', 'de', 'DEU'].map(isCountryCode)).toEqual([false, false, false, false, false, false, false]);
  });
});
