package cli

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/cli/top"
	"github.com/refrakt/refrakt/internal/daemontest"
)

// TestE2ETokenFileGoesToItsOwnersDaemon: the daemon that wrote the token
// file, run by the same user, still gets its token, whether reached as
// 127.0.0.1 or as localhost, by the CLI and by top's source.
func TestE2ETokenFileGoesToItsOwnersDaemon(t *testing.T) {
	d := daemontest.Start(t, []string{"REFRAKT_DEVELOPER_TOKEN="})
	bin := daemontest.Binary(t)
	port := d.Addr[strings.LastIndexByte(d.Addr, ':')+1:]
	for _, server := range []string{d.URL, "http://localhost:" + port} {
		cmd := exec.Command(bin, "jobs", "list", "--server", server)
		cmd.Env = []string{"HOME=" + d.StateDir, "XDG_STATE_HOME=" + d.StateDir}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("jobs list --server %s: %v\n%s", server, err, out)
		}
	}
	env := map[string]string{"XDG_STATE_HOME": d.StateDir}
	conn := ConnOptions{Server: d.URL}
	if err := conn.resolve(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if conn.tokenFile == "" {
		t.Fatal("the token file was not read")
	}
	src := top.NewHTTPSource(conn.Server, conn.apiClient())
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := src.Fetch(ctx)
		cancel()
		if err != nil {
			t.Errorf("fetch %d: %v", i+1, err)
		}
	}
}
