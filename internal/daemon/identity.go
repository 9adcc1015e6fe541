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

// The identity headers, in the canonical form http.Header keeps its keys
// in (X-UserID is X-Userid there), so that headerValue finds them.
const (
	hdrUserID    = "X-User-Id"
	hdrUserIDAlt = "X-Userid"
	hdrTenantID  = "X-Tenant-Id"
	hdrTier      = "X-Ratelimit-Tier"
	hdrForwarded = "X-Forwarded-For"
	hdrAuth      = "Authorization"
)

// headerValue is h.Get(key) for a key already in canonical form: Get
// canonicalizes its key first, a pass over it on every call, and the
// limited routes look up half a dozen headers a request.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// identityRules are the settings identity resolution follows.
type identityRules struct {
	trusted  []netip.Prefix
	ipHeader string // CLIENT_IP_HEADER, e.g. CF-Connecting-IP
}

// newIdentityRules keeps the client-IP header in its canonical form, so
// looking it up on every request allocates nothing.
func newIdentityRules(trusted []netip.Prefix, ipHeader string) *identityRules {
	if ipHeader != "" {
		ipHeader = http.CanonicalHeaderKey(ipHeader)
	}
	return &identityRules{trusted: trusted, ipHeader: ipHeader}
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

// resolve resolves r's identity. The client IP is the socket peer unless
// the peer is a trusted proxy; then it is CLIENT_IP_HEADER when that holds a
// well-formed address, else the right-most address of X-Forwarded-For that
// is not itself a trusted proxy (walking left past trusted hops, stopping at
// the first malformed entry, which is never believed). Identity headers are
// read only when the peer is trusted or grantHeaders says a token allows
// them; grantHeaders is asked only when it matters (an untrusted peer),
// since checking a bearer token costs a SHA-256.
//
// Its error (a 400) is a query that identity was to be read from and that
// does not parse.
//
// It runs on every limited request, so it allocates at most the IP string:
// header names are canonical constants, the query is parsed only when there
// is one, X-Forwarded-For is walked in place, and the IP text is taken from
// the request when it is already canonical.
func (ir *identityRules) resolve(r *http.Request, grantHeaders func() bool) (Identity, error) {
	host, peer := peerHostAddr(r.RemoteAddr)
	ip, ipText := peer, host
	trusted := peer.IsValid() && ir.isTrusted(peer)
	if trusted {
		if a, text, ok := ir.forwardedClient(r, peer); ok {
			ip, ipText = a, text
		}
	}
	var id Identity
	if ip.IsValid() {
		id.IP = addrString(ip, ipText)
	}
	if trusted || grantHeaders() {
		h := r.Header
		id.User = firstNonEmpty(headerValue(h, hdrUserID), headerValue(h, hdrUserIDAlt))
		id.Tenant = strings.TrimSpace(headerValue(h, hdrTenantID))
		if (id.User == "" || id.Tenant == "") && r.URL.RawQuery != "" {
			user, tenant, err := identityParams(r.URL.RawQuery)
			if err != nil {
				return Identity{}, err
			}
			if id.User == "" {
				id.User = strings.TrimSpace(user)
			}
			if id.Tenant == "" {
				id.Tenant = strings.TrimSpace(tenant)
			}
		}
		id.Premium = strings.EqualFold(strings.TrimSpace(headerValue(h, hdrTier)), "premium")
	}
	return id, nil
}

// identityParams reads user_id and tenant from a query, strictly: a query
// that does not parse, or either name given twice, is an error rather than
// an identity quietly absent (the request then limited by IP alone). The
// other names are the route's to judge.
func identityParams(raw string) (user, tenant string, err error) {
	params, err := parseQuery(raw)
	if err != nil {
		return "", "", err
	}
	if err := givenTwice(params, identityNames); err != nil {
		return "", "", err
	}
	q := query{params}
	return q.Get(paramUserID), q.Get(paramTenant), nil
}

// forwardedClient finds the client address a trusted peer reports, and the
// header text it was read from.
func (ir *identityRules) forwardedClient(r *http.Request, peer netip.Addr) (netip.Addr, string, bool) {
	if ir.ipHeader != "" {
		if v := headerValue(r.Header, ir.ipHeader); v != "" {
			if a, text, ok := parseIP(v); ok {
				return a, text, true
			}
		}
	}
	// Walk the hops right to left, across repeated headers, without
	// splitting them into a slice.
	client, text, found := peer, "", false
	hops := r.Header[hdrForwarded]
walk:
	for i := len(hops) - 1; i >= 0; i-- {
		v := hops[i]
		for {
			j := strings.LastIndexByte(v, ',')
			a, hopText, ok := parseIP(v[j+1:])
			if !ok {
				break walk // a malformed hop: nothing left of it can be believed
			}
			client, text, found = a, hopText, true
			if !ir.isTrusted(a) {
				break walk
			}
			if j < 0 {
				break
			}
			v = v[:j]
		}
	}
	return client, text, found
}

// peerAddr parses the socket peer of RemoteAddr ("ip:port").
func peerAddr(remote string) netip.Addr {
	_, a := peerHostAddr(remote)
	return a
}

// peerHostAddr is peerAddr returning the host text too, so the identity
// can reuse it instead of formatting the address again.
func peerHostAddr(remote string) (string, netip.Addr) {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		host := remote[:strings.LastIndexByte(remote, ':')]
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		return host, ap.Addr().Unmap()
	}
	a, err := netip.ParseAddr(remote)
	if err != nil {
		return "", netip.Addr{}
	}
	return remote, a.Unmap()
}

// addrString is a.String(), reusing text when it already is exactly that
// (the usual case: a peer or header holding a plain IPv4 or IPv6 address),
// so no new string is allocated.
func addrString(a netip.Addr, text string) string {
	var buf [64]byte
	if b := a.AppendTo(buf[:0]); string(b) == text {
		return text
	}
	return a.String()
}

// parseIP parses one client address from a header: an IP, or an IP and a
// port ("203.0.113.7:8080", "[2001:db8::1]:443"), the form Azure Application
// Gateway and some IIS/ARR set-ups write X-Forwarded-For in. It returns the
// address and its text without port or brackets (for addrString). A zone,
// or an address no client sends from (unspecified, multicast, the IPv4
// broadcast), is malformed: believed, it would key every such request on
// one bucket no client owns.
//
// Whether a port follows is decided from the text, not by trying
// ParseAddr first: its error is an allocation, and ip:port is a usual
// case. A bare IPv6 address holds two colons or more and is never read as
// ip:port; with a port it is bracketed.
func parseIP(s string) (netip.Addr, string, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, "", false // ParseAddr would allocate an error to say so
	}
	var (
		a   netip.Addr
		err error
	)
	text := s
	if colon := strings.IndexByte(s, ':'); s[0] == '[' || (colon >= 0 && colon == strings.LastIndexByte(s, ':')) {
		var ap netip.AddrPort
		ap, err = netip.ParseAddrPort(s)
		a = ap.Addr()
		text = strings.TrimSuffix(strings.TrimPrefix(s[:strings.LastIndexByte(s, ':')], "["), "]")
	} else {
		a, err = netip.ParseAddr(s)
	}
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, "", false
	}
	a = a.Unmap()
	if a.IsUnspecified() || a.IsMulticast() || a == broadcast4 {
		return netip.Addr{}, "", false
	}
	return a, text, true
}

// broadcast4 is the IPv4 limited broadcast address, never a packet's source.
var broadcast4 = netip.AddrFrom4([4]byte{255, 255, 255, 255})

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}
