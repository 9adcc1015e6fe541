package procnet

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// littleEndian says whether this machine prints /proc/net/tcp's addresses
// as the samples below were printed (amd64, arm64).
func littleEndian() bool { return binary.NativeEndian.Uint16([]byte{1, 0}) == 1 }

// TestParseLine: lines as Linux writes them, IPv4 and IPv6: a listener, a
// server's end of a connection, a dual-stack server's end of an IPv4
// client's connection (IPv4-mapped), a time-wait entry; each 32-bit word
// of an address is in the machine's byte order.
func TestParseLine(t *testing.T) {
	if !littleEndian() {
		t.Skip("the samples are a little-endian machine's")
	}
	ap := netip.MustParseAddrPort
	tests := []struct {
		name string
		line string
		want Entry
		conn bool
	}{
		{"IPv4 listener",
			"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 7695624 1 0000000000000000 100 0 0 10 0",
			Entry{Local: ap("127.0.0.1:8080"), Remote: ap("0.0.0.0:0"), State: 0x0A, UID: 1000}, false},
		{"IPv4 server end",
			"  12: 0100007F:4965 0200007F:D431 01 00000000:00000000 00:00000000 00000000 65534        0 7705043 1 0000000000000000 20 4 30 10 -1",
			Entry{Local: ap("127.0.0.1:18789"), Remote: ap("127.0.0.2:54321"), State: 0x01, UID: 65534}, true},
		{"IPv4 SYN_RECV",
			"   3: 0100007F:4965 0100007F:D431 03 00000000:00000000 02:000000C8 00000000  1000        0 0 0 0000000000000000",
			Entry{Local: ap("127.0.0.1:18789"), Remote: ap("127.0.0.1:54321"), State: 0x03, UID: 1000}, true},
		{"IPv4 time-wait",
			"   4: 0100007F:4965 0100007F:D431 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000",
			Entry{Local: ap("127.0.0.1:18789"), Remote: ap("127.0.0.1:54321"), State: 0x06, UID: 0}, false},
		{"IPv6 loopback",
			"   0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:D431 01 00000000:00000000 00:00000000 00000000  1000        0 123 1 0000000000000000 20 4 30 10 -1",
			Entry{Local: ap("[::1]:8080"), Remote: ap("[::1]:54321"), State: 0x01, UID: 1000}, true},
		{"IPv4-mapped",
			"   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000200007F:D431 01 00000000:00000000 00:00000000 00000000    33        0 124 1 0000000000000000 20 4 30 10 -1",
			Entry{Local: ap("[::ffff:127.0.0.1]:8080"), Remote: ap("[::ffff:127.0.0.2]:54321"), State: 0x01, UID: 33}, true},
		// Every word's bytes are reversed, not the address's: 2001:db8::1
		// is 20 01 0d b8 | 00.. | 00.. | 00 00 00 01.
		{"IPv6 global",
			"   2: B80D0120000000000000000001000000:0050 B80D0120000000000000000002000000:C000 01 00000000:00000000 00:00000000 00000000     7        0 125 1 0000000000000000 20 4 30 10 -1",
			Entry{Local: ap("[2001:db8::1]:80"), Remote: ap("[2001:db8::2]:49152"), State: 0x01, UID: 7}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLine(tt.line)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if got.Connection() != tt.conn {
				t.Errorf("Connection() = %v, want %v", got.Connection(), tt.conn)
			}
		})
	}
	for _, bad := range []string{"", "  sl  local_address rem_address   st tx_queue", "0: 0100007F 00000000:0000 0A 0 0 0 0",
		"0: 0100007:1F90 00000000:0000 0A 0 0 0 0", "0: 0100007F:1F90 00000000:0000 0A 0 0 0 x"} {
		if e, err := ParseLine(bad); err == nil {
			t.Errorf("ParseLine(%q) = %+v, want an error", bad, e)
		}
	}
}

// TestOwnerFindsTheServerEnd: in tables written as Linux writes them, the
// server's end of a connection is the entry whose local end is the
// client's remote one and whose remote end is the client's local one, in
// tcp or (a dual-stack server) in tcp6 under IPv4-mapped addresses; a
// time-wait entry of the same ends (uid 0) is not it.
func TestOwnerFindsTheServerEnd(t *testing.T) {
	if !littleEndian() {
		t.Skip("the samples are a little-endian machine's")
	}
	dir := t.TempDir()
	head := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	write := func(name string, lines ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(head+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v4 := write("tcp",
		"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0",
		"   1: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1", // the client's end
		"   2: 0100007F:1F90 0100007F:D431 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000",               // an old time-wait
		"   3: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0000000000000000 20 4 30 10 -1",
	)
	v6 := write("tcp6",
		"   0: 0000000000000000FFFF00000100007F:2328 0000000000000000FFFF00000100007F:D432 01 00000000:00000000 00:00000000 00000000 65534        0 4 1 0000000000000000 20 4 30 10 -1",
		"   1: 00000000000000000000000001000000:2329 00000000000000000000000001000000:D433 03 00000000:00000000 02:000000C8 00000000    42        0 0 0 0000000000000000",
	)
	tab := Table{Files: []string{v4, v6}}
	ap := netip.MustParseAddrPort
	tests := []struct {
		name           string
		server, client string
		uid            uint32
		found          bool
	}{
		{"IPv4", "127.0.0.1:8080", "127.0.0.1:54321", 1000, true},
		{"IPv4 to a dual-stack server", "127.0.0.1:9000", "127.0.0.1:54322", 65534, true},
		{"IPv4-mapped as dialled", "[::ffff:127.0.0.1]:9000", "[::ffff:127.0.0.1]:54322", 65534, true},
		{"IPv6, SYN_RECV", "[::1]:9001", "[::1]:54323", 42, true},
		{"no such connection", "127.0.0.1:8080", "127.0.0.1:1", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The entry wanted: the server's end, whose remote end is the client.
			uid, found, err := tab.Owner(ap(tt.server), ap(tt.client))
			if err != nil || found != tt.found || uid != tt.uid {
				t.Errorf("Owner = %d, %v, %v; want %d, %v, nil", uid, found, err, tt.uid, tt.found)
			}
		})
	}
	if _, _, err := (Table{Files: []string{filepath.Join(dir, "none"), filepath.Join(dir, "none6")}}).Owner(ap("127.0.0.1:1"), ap("127.0.0.1:2")); err != ErrUnavailable {
		t.Errorf("no table: err %v, want ErrUnavailable", err)
	}
}

// TestOwnerOfARealConnection: on Linux, the server's end of a connection
// this process makes to itself is found, owned by this process's user.
func TestOwnerOfARealConnection(t *testing.T) {
	if _, err := os.Stat(System.Files[0]); err != nil {
		t.Skip("no /proc/net/tcp here:", err)
	}
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			host := "127.0.0.1"
			if network == "tcp6" {
				host = "[::1]"
			}
			ln, err := net.Listen(network, host+":0")
			if err != nil {
				t.Skip("no loopback for", network, err)
			}
			defer ln.Close()
			c, err := net.Dial(network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			uid, found, err := System.Owner(c.RemoteAddr().(*net.TCPAddr).AddrPort(), c.LocalAddr().(*net.TCPAddr).AddrPort())
			if err != nil || !found || uid != uint32(os.Getuid()) {
				t.Errorf("Owner = %d, %v, %v; want %d, true, nil", uid, found, err, os.Getuid())
			}
		})
	}
}
