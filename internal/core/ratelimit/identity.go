package ratelimit

import (
	"net/netip"
	"strings"

	"github.com/refrakt/refrakt/internal/core"
)

// maxIdentity bounds an identity's length so that a client cannot make the
// limiter keep arbitrarily large keys.
const maxIdentity = 200

// GlobalIdentity is the identity of the global scope: its one bucket of a
// limit is <limit>:global:all.
const GlobalIdentity = "all"

// IPKey returns the identity an IP address is keyed on: an IPv4 address (or
// an IPv4-mapped IPv6 one) as itself, an IPv6 address as its /64, since one
// subscriber usually holds a whole /64. ok is false for a malformed address.
func IPKey(ip string) (key string, ok bool) {
	b, ok := appendIPKey(nil, ip)
	return string(b), ok
}

// appendIPKey appends IPKey(ip) to dst without allocating for IPv4.
func appendIPKey(dst []byte, ip string) ([]byte, bool) {
	if isDottedQuad(ip) {
		return append(dst, ip...), true
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" {
		return dst, false
	}
	a = a.Unmap()
	if a.Is4() {
		return a.AppendTo(dst), true
	}
	p, _ := a.Prefix(64)
	return p.AppendTo(dst), true
}

// isDottedQuad reports whether s is an IPv4 address in canonical form
// (four decimal numbers 0-255 without leading zeros), the common case the
// limiter keys on as it is, without a full parse.
func isDottedQuad(s string) bool {
	if len(s) < 7 || len(s) > 15 {
		return false
	}
	// Octet by octet, digit by digit, unrolled: a decision runs this for
	// every request, and a loop over characters with a state per character
	// cost 40% more instructions (210 against 153 for the benchmark's
	// addresses). A branch-free version that classifies 8 bytes at a time
	// was slower still (20 ns a call against 10).
	i := 0
	for part := 0; ; part++ {
		if i >= len(s) {
			return false
		}
		v := uint(s[i] - '0')
		if v > 9 {
			return false
		}
		i++
		if i < len(s) {
			if d := uint(s[i] - '0'); d <= 9 {
				if v == 0 {
					return false // a leading zero
				}
				v = v*10 + d
				i++
				if i < len(s) {
					if d := uint(s[i] - '0'); d <= 9 {
						if v = v*10 + d; v > 255 {
							return false
						}
						i++
					}
				}
			}
		}
		if part == 3 {
			return i == len(s)
		}
		if i >= len(s) || s[i] != '.' {
			return false
		}
		i++
	}
}

// badIdentity is the error of a request whose identity for scope the
// limiter cannot key on.
func badIdentity(scope Scope) error {
	if scope == ScopeIP {
		return core.Errorf(core.CodeInvalid, "the client address is not an IP address")
	}
	return core.Errorf(core.CodeInvalid, "identity of scope %s must be 1 to %d bytes", scope, maxIdentity)
}

// normalizeIdentity checks an identity given in an override target or a
// reset key and returns the form the limiter keys buckets on.
func normalizeIdentity(scope Scope, id string) (string, error) {
	if id == "" || len(id) > maxIdentity {
		return "", core.Errorf(core.CodeInvalid, "identity of scope %s must be 1 to %d bytes", scope, maxIdentity)
	}
	switch scope {
	case ScopeIP:
		if p, err := netip.ParsePrefix(id); err == nil && p.Addr().Is6() && p.Bits() == 64 && p.Masked() == p {
			return p.String(), nil
		}
		k, ok := IPKey(id)
		if !ok {
			return "", core.Errorf(core.CodeInvalid, "%q is not an IP address", id)
		}
		return k, nil
	case ScopeUserTenant:
		if u, t, ok := strings.Cut(id, ":"); !ok || u == "" || t == "" {
			return "", core.Errorf(core.CodeInvalid, "identity of scope user_tenant is <user>:<tenant>, got %q", id)
		}
	case ScopeGlobal:
		if id != GlobalIdentity {
			return "", core.Errorf(core.CodeInvalid, "identity of scope global is %q, got %q", GlobalIdentity, id)
		}
	}
	return id, nil
}

// appendUserPart appends user as the user part of a user_tenant identity,
// "<user>:<tenant>": with its ':' and '%' escaped (%3A, %25), so that the
// first ':' ends the user, and the pairs ("a:b", "c") and ("a", "b:c") key
// two buckets, not one.
func appendUserPart(dst []byte, user string) []byte {
	if strings.IndexByte(user, ':') < 0 && strings.IndexByte(user, '%') < 0 {
		return append(dst, user...)
	}
	for i := 0; i < len(user); i++ {
		switch c := user[i]; c {
		case ':':
			dst = append(dst, "%3A"...)
		case '%':
			dst = append(dst, "%25"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// keyPrefix is the start of the keys of a limit's scope: "<limit>:<scope>:".
func keyPrefix(limit string, scope Scope) string { return limit + ":" + string(scope) + ":" }

// carries reports whether r names an identity for scope (which may still
// be refused: a malformed address, an identity too long).
func (r *Request) carries(scope Scope) bool {
	switch scope {
	case ScopeIP:
		return r.IP != ""
	case ScopeUser:
		return r.User != ""
	case ScopeTenant:
		return r.Tenant != ""
	case ScopeUserTenant:
		return r.User != "" && r.Tenant != ""
	}
	return true // ScopeGlobal
}

// maxIdentityLen bounds the identity appendKey builds for scope from r: an
// address keys on at most 24 bytes ("ffff:ffff:ffff:ffff::/64"), the
// global scope on "all", names on themselves.
func (r *Request) maxIdentityLen(scope Scope) int {
	switch scope {
	case ScopeIP:
		return max(len(r.IP), 24)
	case ScopeUser:
		return len(r.User)
	case ScopeTenant:
		return len(r.Tenant)
	case ScopeUserTenant:
		return 3*len(r.User) + 1 + len(r.Tenant) // each user byte escaped at most to three
	}
	return len(GlobalIdentity)
}

// appendKey appends "<limit>:<scope>:<identity>" for the scope of req, which
// carries that scope's identity (Request.carries), to dst, given the scope's
// keyPrefix, and reports whether the limiter takes the identity (a
// well-formed address, at most maxIdentity bytes). It returns the identity
// as a string that needs no allocation where the request already holds it.
func appendKey(dst []byte, prefix string, scope Scope, req *Request) (key []byte, identity string, ok bool) {
	dst = append(dst, prefix...)
	start := len(dst)
	switch scope {
	case ScopeIP:
		if isDottedQuad(req.IP) { // the usual case: keyed as it is
			return append(dst, req.IP...), req.IP, true
		}
		if dst, ok = appendIPKey(dst, req.IP); !ok {
			return dst, "", false
		}
		identity = req.IP
		if string(dst[start:]) != req.IP {
			identity = string(dst[start:])
		}
	case ScopeUser:
		identity = req.User
	case ScopeTenant:
		identity = req.Tenant
	case ScopeUserTenant:
		dst = append(append(appendUserPart(dst, req.User), ':'), req.Tenant...)
		identity = string(dst[start:])
	case ScopeGlobal:
		identity = GlobalIdentity
	}
	if len(identity) > maxIdentity {
		return dst, "", false
	}
	if scope == ScopeUser || scope == ScopeTenant || scope == ScopeGlobal {
		dst = append(dst, identity...)
	}
	return dst, identity, true
}
