package daemon

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/refrakt/refrakt/internal/core"
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

// The identity headers as the README spells them, for the errors that name
// them.
const (
	nameUserID    = "X-User-ID"
	nameUserIDAlt = "X-UserID"
	nameTenantID  = "X-Tenant-ID"
	nameTier      = "X-RateLimit-Tier"
)

// identityRules are the settings identity resolution follows.
type identityRules struct {
	trusted      []netip.Prefix
	ipHeader     string // CLIENT_IP_HEADER, e.g. CF-Connecting-IP, canonical
	ipHeaderName string // CLIENT_IP_HEADER as configured, for errors
}

// newIdentityRules keeps the client-IP header in its canonical form, so
// looking it up on every request allocates nothing.
func newIdentityRules(trusted []netip.Prefix, ipHeader string) *identityRules {
	ir := &identityRules{trusted: trusted, ipHeaderName: ipHeader}
	if ipHeader != "" {
		ir.ipHeader = http.CanonicalHeaderKey(ipHeader)
	}
	return ir
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
// Its error (a 400) is identity that was to be read and is ambiguous or
// does not parse: a query that does not parse, or what userTenant and
// singleHeader refuse. Ambiguity is refused rather than resolved, since one
// of the candidates is the client's and nothing says which.
//
// It runs on every limited request, so it allocates at most the IP string:
// header names are canonical constants, the query is parsed only when there
// is one, X-Forwarded-For is walked in place, and the IP text is taken from
// the request when it is already canonical.
//
// Without users (a route whose limit keys on no user or tenant) it reads
// the client IP and the tier only: the user and the tenant are not read at
// all, neither from headers nor from the query, so they cannot be
// ambiguous there (GET /api/public/tenant-meta's ?tenant= is the tenant it
// describes, not the caller's).
func (ir *identityRules) resolve(r *http.Request, grantHeaders func() bool, users bool) (Identity, error) {
	return ir.resolveQuery(r, r.URL.RawQuery, grantHeaders, users)
}

// resolveQuery is resolve with rawQuery read for the user_id and tenant
// parameters in place of r's query: "" for the decision route, whose query
// may be the client's own (handleCheck).
func (ir *identityRules) resolveQuery(r *http.Request, rawQuery string, grantHeaders func() bool, users bool) (Identity, error) {
	host, peer := peerHostAddr(r.RemoteAddr)
	ip, ipText := peer, host
	trusted := peer.IsValid() && ir.isTrusted(peer)
	if trusted {
		// Only a trusted peer's client-IP header is read, so only its
		// repetition is refused.
		if ir.ipHeader != "" && len(r.Header[ir.ipHeader]) > 1 {
			return Identity{}, repeatedHeader(ir.ipHeaderName)
		}
		if a, text, ok := ir.forwardedClient(r, peer); ok {
			ip, ipText = a, text
		}
	}
	var id Identity
	if ip.IsValid() {
		id.IP = addrString(ip, ipText)
	}
	if !trusted && !grantHeaders() {
		return id, nil // the identity headers are ignored, repeated or not
	}
	tier, err := singleHeader(r.Header, hdrTier, nameTier)
	if err != nil {
		return Identity{}, err
	}
	id.Premium = strings.EqualFold(strings.TrimSpace(tier), "premium")
	if users {
		if id.User, id.Tenant, err = userTenant(r.Header, rawQuery); err != nil {
			return Identity{}, err
		}
	}
	return id, nil
}

// singleHeader is the value of the header key (canonical; name is how
// errors spell it), "" when absent, and an error when it is given more than
// once: a proxy that adds its value (Envoy's request_headers_to_add, HAProxy's
// add-header) instead of replacing the client's leaves the client's first,
// and which line is the proxy's cannot be told.
func singleHeader(h http.Header, key, name string) (string, error) {
	switch vs := h[key]; len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", repeatedHeader(name)
}

func repeatedHeader(name string) error {
	return core.Errorf(core.CodeInvalid, "header %s is given more than once: a trusted proxy must set it, replacing any the client sent, not add another", name)
}

// userTenant reads the user (X-User-ID or X-UserID, else ?user_id=) and the
// tenant (X-Tenant-ID, else ?tenant=) a trusted source vouches for. Where
// two of those sources could each hold the identity and one of them may be
// the client's, it refuses what they do not agree on instead of picking
// one: X-User-ID and X-UserID naming different users (a proxy that sets one
// and leaves the client's other in place), and, in a request carrying
// identity headers, a user_id or tenant parameter that is not the headers'
// own user or tenant (a proxy that sets headers and passes the client's
// query through, e.g. X-Tenant-ID set and ?user_id= the client's). A
// request whose identity is all in headers or all in the query, or that
// repeats the headers' values in the query, passes.
func userTenant(h http.Header, rawQuery string) (user, tenant string, err error) {
	user, err = singleHeader(h, hdrUserID, nameUserID)
	if err != nil {
		return "", "", err
	}
	alt, err := singleHeader(h, hdrUserIDAlt, nameUserIDAlt)
	if err != nil {
		return "", "", err
	}
	tenant, err = singleHeader(h, hdrTenantID, nameTenantID)
	if err != nil {
		return "", "", err
	}
	user, alt, tenant = strings.TrimSpace(user), strings.TrimSpace(alt), strings.TrimSpace(tenant)
	if alt != "" {
		if user != "" && user != alt {
			return "", "", core.Errorf(core.CodeInvalid, "headers %s and %s name different users: a trusted proxy must set one and remove the other", nameUserID, nameUserIDAlt)
		}
		user = alt
	}
	if rawQuery == "" {
		return user, tenant, nil
	}
	qUser, qTenant, err := identityParams(rawQuery)
	if err != nil {
		return "", "", err
	}
	qUser, qTenant = strings.TrimSpace(qUser), strings.TrimSpace(qTenant)
	if user == "" && tenant == "" {
		return qUser, qTenant, nil // the identity is the query's alone
	}
	if qUser != "" && qUser != user {
		return "", "", queryDisagrees(paramUserID, nameUserID+" or "+nameUserIDAlt)
	}
	if qTenant != "" && qTenant != tenant {
		return "", "", queryDisagrees(paramTenant, nameTenantID)
	}
	return user, tenant, nil
}

func queryDisagrees(param, headers string) error {
	return core.Errorf(core.CodeInvalid, "query parameter %s is not the identity headers' (%s): in a request with identity headers the query may only repeat them", param, headers)
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
