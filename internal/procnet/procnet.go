// Package procnet reads Linux's table of TCP sockets (/proc/net/tcp and
// /proc/net/tcp6) to tell which user owns the other end of a connection
// made on this machine: the CLI sends the token file's token only to a
// server of the user who owns that file.
package procnet

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// ErrUnavailable is returned where there is no socket table to read (no
// /proc/net/tcp nor tcp6: not Linux, or /proc not mounted).
var ErrUnavailable = errors.New("no /proc/net/tcp to read")

// TCP states, as the kernel writes them (include/net/tcp_states.h).
const (
	stateEstablished = 0x01
	stateSynRecv     = 0x03
)

// Entry is one line of /proc/net/tcp or tcp6: a socket's two ends, its
// state and the user id owning it.
type Entry struct {
	Local, Remote netip.AddrPort
	State         uint8
	UID           uint32
}

// Connection reports whether e is one end of a connection being made or
// made (SYN_RECV, ESTABLISHED). Only these carry the owner of the socket
// a connection was accepted on: a socket closed already may be listed as
// a time-wait entry (TIME_WAIT or FIN_WAIT2), whose uid is always 0.
func (e Entry) Connection() bool { return e.State == stateEstablished || e.State == stateSynRecv }

// ParseLine parses one line of /proc/net/tcp or tcp6 (not the heading):
//
//	0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000  0 12345 …
//
// The fields are the slot, the local and remote address:port, the state,
// tx:rx queues, timer, retransmits, uid, timeout and inode. An address is
// the kernel's in-memory words printed in hex: IPv4 one 32-bit word, IPv6
// four, each in the machine's byte order (so reversed on little-endian
// machines: 127.0.0.1 is 0100007F); the port is in hex, most significant
// digit first.
func ParseLine(line string) (Entry, error) {
	f := strings.Fields(line)
	if len(f) < 8 || !strings.HasSuffix(f[0], ":") {
		return Entry{}, fmt.Errorf("not a socket line: %q", line)
	}
	local, err := parseAddrPort(f[1])
	if err != nil {
		return Entry{}, err
	}
	remote, err := parseAddrPort(f[2])
	if err != nil {
		return Entry{}, err
	}
	st, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil {
		return Entry{}, fmt.Errorf("state %q: %w", f[3], err)
	}
	uid, err := strconv.ParseUint(f[7], 10, 32)
	if err != nil {
		return Entry{}, fmt.Errorf("uid %q: %w", f[7], err)
	}
	return Entry{Local: local, Remote: remote, State: uint8(st), UID: uint32(uid)}, nil
}

// parseAddrPort parses "0100007F:1F90" (IPv4) or 32 hex digits and a port
// (IPv6), each 32-bit word of the address in the machine's byte order.
func parseAddrPort(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("address %q: no port", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: port: %w", s, err)
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("address %q: not 8 or 32 hex digits", s)
	}
	// Each word was printed as a number (%08X) of bytes held in network
	// order: put each word back into memory as the machine holds numbers.
	var b [16]byte
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	var addr netip.Addr
	if len(raw) == 4 {
		addr = netip.AddrFrom4([4]byte(b[:4]))
	} else {
		addr = netip.AddrFrom16(b)
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// Table is where the socket tables are read: Files, tried in order.
type Table struct {
	Files []string
}

// System is this machine's table (of the caller's network namespace).
var System = Table{Files: []string{"/proc/net/tcp", "/proc/net/tcp6"}}

// Owner finds the socket whose local end is local and whose remote end is
// remote, in a connection's state (Entry.Connection), and returns the uid
// owning it. Addresses compare without IPv4-mapping (::ffff:127.0.0.1 is
// 127.0.0.1), since a dual-stack server's socket is listed in tcp6 with
// the mapped form of an IPv4 client's address. found is false when no
// such socket is listed; err is ErrUnavailable when no file of t exists.
func (t Table) Owner(local, remote netip.AddrPort) (uid uint32, found bool, err error) {
	local, remote = unmap(local), unmap(remote)
	missing := 0
	for _, name := range t.Files {
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			missing++
			continue
		}
		if err != nil {
			return 0, false, err
		}
		uid, found, err := find(f, local, remote)
		f.Close()
		if err != nil {
			return 0, false, fmt.Errorf("%s: %w", name, err)
		}
		if found {
			return uid, true, nil
		}
	}
	if missing == len(t.Files) {
		return 0, false, ErrUnavailable
	}
	return 0, false, nil
}

func find(r io.Reader, local, remote netip.AddrPort) (uint32, bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	first := true
	for sc.Scan() {
		if first { // the heading
			first = false
			continue
		}
		e, err := ParseLine(sc.Text())
		if err != nil {
			return 0, false, err
		}
		if e.Connection() && unmap(e.Local) == local && unmap(e.Remote) == remote {
			return e.UID, true, nil
		}
	}
	return 0, false, sc.Err()
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
