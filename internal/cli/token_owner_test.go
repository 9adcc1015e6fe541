package cli

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/refrakt/refrakt/internal/procnet"
)

// TestCheckListenerOwner: on a real loopback connection, the server's end
// of this process's own listener is this user's: it passes for this
// user, and for another is a listenerOwnerError naming this user's uid; a
// table without that connection is refused, as unknown (fail closed); no
// table at all (not Linux) lets it pass, as before the check.
func TestCheckListenerOwner(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	me := uint32(os.Getuid())

	dir := t.TempDir()
	if err := checkListenerOwner(ctx, c, me+1, procnet.Table{Files: []string{filepath.Join(dir, "none")}}); err != nil {
		t.Errorf("no socket table: %v, want nil (the token sent, as before)", err)
	}
	empty := filepath.Join(dir, "tcp")
	if err := os.WriteFile(empty, []byte("  sl  local_address rem_address   st\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var e listenerOwnerError
	if err := checkListenerOwner(ctx, c, me, procnet.Table{Files: []string{empty}}); !errors.As(err, &e) || e.known {
		t.Errorf("connection not in the table: %v, want a listenerOwnerError, owner unknown", err)
	}

	if _, err := os.Stat(procnet.System.Files[0]); err != nil {
		t.Skip("no /proc/net/tcp here:", err)
	}
	if err := checkListenerOwner(ctx, c, me, procnet.System); err != nil {
		t.Errorf("this user's listener, for this user: %v, want nil", err)
	}
	err = checkListenerOwner(ctx, c, me+1, procnet.System)
	if !errors.As(err, &e) || !e.known || e.uid != me || e.owner != me+1 || e.addr != ln.Addr().String() {
		t.Errorf("this user's listener, for another: %#v, want a listenerOwnerError naming uid %d at %s", err, me, ln.Addr())
	}
}
