package daemon

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/refrakt/refrakt/internal/core"
)

// The identity parameters (identity.go): any route that reads its query
// takes them, since a trusted proxy may add them to any request.
const (
	paramUserID = "user_id"
	paramTenant = "tenant"
)

// identityNames are the identity parameters, as one list.
var identityNames = []string{paramUserID, paramTenant}

// queryParam is one name=value pair of a query string, decoded.
type queryParam struct{ name, value string }

// parseQuery decodes a query string strictly, pairs in order. Unlike
// url.ParseQuery, which drops what it cannot decode and splits on ';' no
// more (so ?queue=x%ZZ became no filter at all), it refuses the whole
// query, naming the problem. An empty pair (a stray '&') is skipped.
func parseQuery(raw string) ([]queryParam, error) {
	var params []queryParam
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		if strings.IndexByte(part, ';') >= 0 {
			return nil, core.Errorf(core.CodeInvalid, "query %q holds a ';', which is not a separator: separate parameters with '&', and write a ';' in a value as %%3B", raw)
		}
		k, v, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			return nil, core.Errorf(core.CodeInvalid, "query parameter name %q is not valid percent-encoding", k)
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return nil, core.Errorf(core.CodeInvalid, "query parameter %s: value %q is not valid percent-encoding", name, v)
		}
		if name == "" {
			return nil, core.Errorf(core.CodeInvalid, "query %q holds a parameter without a name", raw)
		}
		params = append(params, queryParam{name, value})
	}
	return params, nil
}

// routeQuery is the query of r, parsed strictly for a route that takes the
// parameters names (and the identity ones): malformed, a name the route
// does not take, or a name given twice, is a 400 saying so, where
// r.URL.Query() would have dropped or ignored it and the route done
// something else than asked. Read the values with Get. A request without a
// query costs nothing.
func routeQuery(r *http.Request, names ...string) (query, error) {
	if r.URL.RawQuery == "" {
		return query{}, nil
	}
	params, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return query{}, err
	}
	for _, p := range params {
		if !slices.Contains(identityNames, p.name) && !slices.Contains(names, p.name) {
			return query{}, core.Errorf(core.CodeInvalid, "unknown query parameter %q: %s takes %s", p.name, routeName(r), takes(names))
		}
	}
	if err := givenTwice(params, nil); err != nil {
		return query{}, err
	}
	return query{params}, nil
}

// givenTwice is a 400 naming the first parameter of params given more than
// once, among those of names (all when names is nil); nil when there is
// none.
func givenTwice(params []queryParam, names []string) error {
	for i, p := range params {
		if names != nil && !slices.Contains(names, p.name) {
			continue
		}
		for _, q := range params[:i] {
			if q.name == p.name {
				return core.Errorf(core.CodeInvalid, "query parameter %q is given more than once", p.name)
			}
		}
	}
	return nil
}

// query is a strictly parsed query (routeQuery): each name at most once.
type query struct{ params []queryParam }

// Get returns the value of the parameter name, "" when it is absent.
func (q query) Get(name string) string {
	for _, p := range q.params {
		if p.name == name {
			return p.value
		}
	}
	return ""
}

// Lookup returns the value of the parameter name and whether it is given
// (an empty value too).
func (q query) Lookup(name string) (string, bool) {
	for _, p := range q.params {
		if p.name == name {
			return p.value, true
		}
	}
	return "", false
}

// routeName is the route r matched ("GET /api/dev/jobs"), else its method and path.
func routeName(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return r.Method + " " + r.URL.Path
}

// identityQuery gives h's route a strict query (routeQuery) that takes the
// identity parameters only: the routes whose query is read for identity
// alone (POST /run, POST /assistant, GET /api/secure/ping, GET
// /api/dev/rl-test). Without it their query was read only from a trusted
// source, and then only for user_id and tenant: any other name, or a name
// repeated from an untrusted one, passed unseen.
func (s *Server) identityQuery(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := routeQuery(r); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// takes lists the parameters a route takes, for its errors.
func takes(names []string) string {
	if len(names) == 0 {
		return "only " + strings.Join(identityNames, ", ") + " (from a trusted proxy)"
	}
	var identity []string
	for _, n := range identityNames {
		if !slices.Contains(names, n) {
			identity = append(identity, n)
		}
	}
	return strings.Join(names, ", ") + " (and " + strings.Join(identity, ", ") + " from a trusted proxy)"
}
