/**
 * Which address a request came from, behind the proxies the operator trusts
 * (`TRUST_PROXY`), the way reverse proxies define it: walk from the socket's
 * peer back through X-Forwarded-For (each proxy appends the address it
 * received from) while the address is a trusted proxy; the first one that is
 * not is the client. So behind one proxy that appends, a client's own
 * X-Forwarded-For entries are never believed, and headers other proxies use
 * (x-client-ip, x-real-ip) are not read at all. An entry that is no IP
 * address ends the walk at the last valid one.
 *
 * Addresses are parsed with ipaddr.js (MIT; already under fastify).
 */
import ipaddr from 'ipaddr.js';

/** A hop count (0: no proxy is trusted) or the trusted proxies' addresses and ranges. */
export type ProxyTrust = number | readonly string[];

/** TRUST_PROXY as a ProxyTrust, or the rule it broke. */
export function parseProxyTrust(raw: string): ProxyTrust | string {
  const text = raw.trim().toLowerCase();
  if (['false', 'no', 'off', ''].includes(text)) return 0;
  if (['true', 'yes', 'on'].includes(text)) return 1;
  if (/^\d+$/.test(text)) {
    const hops = Number(text);
    return hops <= 16 ? hops : 'expected a hop count from 0 to 16, true / false, or addresses and CIDR ranges separated by commas';
  }
  const ranges = text.split(',').map((s) => s.trim());
  const bad = ranges.find((r) => !(r.includes('/') ? isCidr(r) : ipaddr.isValid(r)));
  if (bad !== undefined) return `${JSON.stringify(bad)} is neither an IP address nor a CIDR range (expected a hop count, true / false, or e.g. 10.0.0.0/8,127.0.0.1)`;
  return ranges;
}

function isCidr(text: string): boolean {
  try {
    ipaddr.parseCIDR(text);
    return true;
  } catch {
    return false;
  }
}

/** An address in its plain form (`::ffff:1.2.3.4` is the IPv4 client of a dual-stack socket), or undefined when it is none. */
export function plainIp(text: string | undefined): string | undefined {
  const t = text?.trim();
  if (!t || !ipaddr.isValid(t)) return undefined;
  const parsed = ipaddr.parse(t);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) return (parsed as ipaddr.IPv6).toIPv4Address().toString();
  return parsed.toString();
}

/** Whether the trust configuration believes any proxy at all (then proxy geo headers are read too). */
export const trustsProxies = (trust: ProxyTrust): boolean => (typeof trust === 'number' ? trust > 0 : trust.length > 0);

function isTrusted(address: string, hop: number, trust: ProxyTrust): boolean {
  if (typeof trust === 'number') return hop < trust;
  const ip = ipaddr.parse(address);
  return trust.some((range) => {
    if (!range.includes('/')) return plainIp(range) === address;
    const [net, bits] = ipaddr.parseCIDR(range);
    const candidate = ip.kind() === net.kind() ? ip : ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress() ? (ip as ipaddr.IPv6).toIPv4Address() : undefined;
    return candidate !== undefined && candidate.kind() === net.kind() && candidate.match(net, bits);
  });
}

/** The client's address from the socket's peer and an X-Forwarded-For value, under `trust`. */
export function clientAddress(socketIp: string | undefined, forwardedFor: string | undefined, trust: ProxyTrust): string {
  const socket = plainIp(socketIp) ?? '';
  if (!trustsProxies(trust) || !socket) return socket;
  const chain = (forwardedFor ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '').reverse();
  let client = socket;
  for (let hop = 0; hop < chain.length && isTrusted(client, hop, trust); hop += 1) {
    const next = plainIp(chain[hop]);
    if (next === undefined) break;
    client = next;
  }
  return client;
}
