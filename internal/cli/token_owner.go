package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/procnet"
)

// On a machine with several users, a loopback port is not "my daemon":
// any user may listen on 127.0.0.1:8080 while the daemon restarts, or on a
// port mistyped. The token file's token (the developer token of the daemon
// its owner runs) therefore goes only to a server process of the user
// owning that file: every connection the client makes is checked, once
// made and before a byte is written, against the kernel's socket table
// (procnet). Where there is no such table (not Linux) the token goes to a
// loopback server as it did before. A token given with REFRAKT_TOKEN or
// --token is the user's choice, sent wherever --server points.

// ownerLookupWait bounds the wait for the server's end of a connection to
// show in the socket table: on loopback the client's connect can return
// before the server's kernel has handled the last packet of the handshake.
const ownerLookupWait = time.Second

// ownerCheckedClient returns an HTTP client whose every connection is to a
// server process of user owner (listed in table), else fails with a
// listenerOwnerError before anything is sent on it.
func ownerCheckedClient(owner uint32, table procnet.Table) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// The server is a loopback one (resolve), which net/http never sends
	// through a proxy: the peer dialled is the server itself.
	tr.Proxy = nil
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if err := checkListenerOwner(ctx, c, owner, table); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: tr}
}

// checkListenerOwner looks up the server's end of c (its local end is c's
// remote one, its remote end c's local one) and says whether user owner
// owns it: nil when so, or when the machine has no socket table to read.
func checkListenerOwner(ctx context.Context, c net.Conn, owner uint32, table procnet.Table) error {
	local, lok := c.LocalAddr().(*net.TCPAddr)
	remote, rok := c.RemoteAddr().(*net.TCPAddr)
	if !lok || !rok {
		return listenerOwnerError{addr: c.RemoteAddr().String(), owner: owner, why: "not a TCP connection"}
	}
	server, client := remote.AddrPort(), local.AddrPort()
	deadline := time.Now().Add(ownerLookupWait)
	for {
		uid, found, err := table.Owner(server, client)
		switch {
		case errors.Is(err, procnet.ErrUnavailable):
			return nil
		case err != nil:
			return listenerOwnerError{addr: addrText(server), owner: owner, why: err.Error()}
		case found && uid == owner:
			return nil
		case found:
			return listenerOwnerError{addr: addrText(server), owner: owner, uid: uid, known: true}
		}
		if !time.Now().Before(deadline) {
			return listenerOwnerError{addr: addrText(server), owner: owner, why: "the server's end of the connection is not in /proc/net/tcp"}
		}
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func addrText(ap netip.AddrPort) string {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// listenerOwnerError is a loopback server to which the token file's token
// was not sent: another user's process listens there (known, uid), or
// which user does could not be told (why). Exit 3, as for a redirect not
// followed: the daemon that wrote the token file was not reached there.
type listenerOwnerError struct {
	server string // the --server URL, filled in by APIClient.Do
	addr   string // the address connected to, "127.0.0.1:8080"
	owner  uint32 // the token file's owner
	uid    uint32 // the listener's owner, when known
	known  bool
	why    string // why the listener's owner is not known
}

func (e listenerOwnerError) Error() string {
	// The URL, and the address connected to when the URL has a name
	// (localhost) rather than that address.
	where := e.addr
	if e.server != "" {
		where = config.RedactURL(e.server)
		if u, err := url.Parse(e.server); err != nil || u.Host != e.addr {
			where += " (" + e.addr + ")"
		}
	}
	return where + ": " + e.TokenWithheld() + e.Hint()
}

// TokenWithheld says what happened in a few words, for top's header.
func (e listenerOwnerError) TokenWithheld() string {
	if e.known {
		return fmt.Sprintf("another user listens there (uid %d, not the token file's owner, uid %d): the token file's token was not sent", e.uid, e.owner)
	}
	return "cannot tell which user listens there (" + e.why + "): the token file's token was not sent"
}

// Hint is the advice after the message.
func (e listenerOwnerError) Hint() string {
	return " (if this is the daemon you mean, give its token with REFRAKT_TOKEN, or --token, which ps shows)"
}
