package daemon

import (
	"net/http"
	"net/netip"
	"strings"
)

// Identity is who a request comes from, as the rate limiter keys it.
type Identity struct {
	// IP is the client address: the socket peer, or what a trusted proxy
	// says the client is.
	IP string
	// User, Tenant and Premium come from headers (or the user_id and tenant
	// query parameters) and are believed only from a trusted proxy or a
	// caller with the developer token; otherwise they are empty.
	User    string
	Tenant  string
	Premium bool
}

// identityRules are the settings identity resolution follows.
type identityRules struct {
	trusted  []netip.Prefix
	ipHeader string // CLIENT_IP_HEADER, e.g. CF-Connecting-IP
}

// isTrusted reports whether a is one of the trusted proxies.
func (ir *identityRules) isTrusted(a netip.Addr) bool {
	for _, p := range ir.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// identify resolves r's identity. The client IP is the socket peer unless
// the peer is a trusted proxy; then it is CLIENT_IP_HEADER when that holds a
// well-formed address, else the right-most address of X-Forwarded-For that
// is not itself a trusted proxy (walking left past trusted hops, stopping at
// the first malformed entry, which is never believed). Identity headers are
// read only when the peer is trusted or grantHeaders says a token allows them.
func (ir *identityRules) identify(r *http.Request, grantHeaders bool) Identity {
	peer := peerAddr(r.RemoteAddr)
	var id Identity
	if peer.IsValid() {
		id.IP = peer.String()
	}
	trusted := peer.IsValid() && ir.isTrusted(peer)
	if trusted {
		if ip, ok := ir.forwardedClient(r, peer); ok {
			id.IP = ip.String()
		}
	}
	if trusted || grantHeaders {
		q := r.URL.Query()
		id.User = firstNonEmpty(r.Header.Get("X-User-ID"), r.Header.Get("X-UserID"), q.Get("user_id"))
		id.Tenant = firstNonEmpty(r.Header.Get("X-Tenant-ID"), q.Get("tenant"))
		id.Premium = strings.EqualFold(strings.TrimSpace(r.Header.Get("X-RateLimit-Tier")), "premium")
	}
	return id
}

// forwardedClient finds the client address a trusted peer reports.
func (ir *identityRules) forwardedClient(r *http.Request, peer netip.Addr) (netip.Addr, bool) {
	if ir.ipHeader != "" {
		if a, ok := parseIP(r.Header.Get(ir.ipHeader)); ok {
			return a, true
		}
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	client, found := peer, false
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseIP(hops[i])
		if !ok {
			break // a malformed hop: nothing left of it can be believed
		}
		client, found = a, true
		if !ir.isTrusted(a) {
			break
		}
	}
	return client, found
}

// peerAddr parses the socket peer of RemoteAddr ("ip:port").
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(remote)
	return a.Unmap()
}

// parseIP parses one address from a header, without zone.
func parseIP(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}
