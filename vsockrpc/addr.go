package vsockrpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mdlayher/vsock"
)

// AnyCID is the vsock context id of an address without one ("vsock://:5005"): listen on every
// context id (VMADDR_CID_ANY).
const AnyCID = 0xFFFFFFFF

// Addr is a parsed address. The forms are:
//
//	vsock://:PORT       listen on any context id (the agent's default is vsock://:5005)
//	vsock://CID:PORT    a context id (dialing needs one, for example the enclave's)
//	unix:///PATH        a unix socket; Listen creates it with mode 0600
//	tcp://HOST:PORT     TCP for development; Listen accepts only a loopback IP
type Addr struct {
	// Network is "vsock", "unix" or "tcp".
	Network string
	// CID and Port are the vsock context id (AnyCID if absent) and port.
	CID, Port uint32
	// Path is the unix socket path.
	Path string
	// HostPort is the TCP "host:port".
	HostPort string
}

// String returns the address in the form ParseAddr accepts.
func (a Addr) String() string {
	switch a.Network {
	case "vsock":
		if a.CID == AnyCID {
			return fmt.Sprintf("vsock://:%d", a.Port)
		}
		return fmt.Sprintf("vsock://%d:%d", a.CID, a.Port)
	case "unix":
		return "unix://" + a.Path
	case "tcp":
		return "tcp://" + a.HostPort
	}
	return ""
}

// ParseAddr parses an address of one of the forms documented on Addr.
func ParseAddr(s string) (Addr, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Addr{}, fmt.Errorf("vsockrpc: address %q: want vsock://, unix:// or tcp://", s)
	}
	bad := func(why string) (Addr, error) { return Addr{}, fmt.Errorf("vsockrpc: address %q: %s", s, why) }
	switch scheme {
	case "vsock":
		cid, port, ok := strings.Cut(rest, ":")
		if !ok {
			return bad("want vsock://[CID]:PORT")
		}
		a := Addr{Network: "vsock", CID: AnyCID}
		p, err := parseUint32(port)
		if err != nil || p == 0xFFFFFFFF {
			return bad("bad port")
		}
		a.Port = p
		if cid != "" {
			c, err := parseUint32(cid)
			if err != nil || c == AnyCID {
				return bad("bad context id")
			}
			a.CID = c
		}
		return a, nil
	case "unix":
		if rest == "" || strings.HasPrefix(rest, "@") || strings.ContainsRune(rest, 0) {
			return bad("want unix:///PATH (abstract sockets have no permissions and are refused)")
		}
		return Addr{Network: "unix", Path: rest}, nil
	case "tcp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil || host == "" {
			return bad("want tcp://HOST:PORT")
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return bad("bad port")
		}
		return Addr{Network: "tcp", HostPort: rest}, nil
	}
	return bad("unknown scheme " + strconv.Quote(scheme))
}

func parseUint32(s string) (uint32, error) {
	if s == "" || s[0] == '+' {
		return 0, strconv.ErrSyntax
	}
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err
}

// Listen listens on addr (see Addr). vsock, unix and tcp listeners are served the same way.
// A unix socket is created with mode 0600 under a private name and renamed into place, so it is
// never reachable with looser permissions; a stale socket at the path (nobody listening) is
// replaced, anything else there is an error. Closing the listener removes the socket. TCP is
// refused unless the host is a loopback IP address.
func Listen(addr string) (net.Listener, error) {
	a, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if err := a.CheckListen(); err != nil {
		return nil, err
	}
	switch a.Network {
	case "vsock":
		l, err := vsock.ListenContextID(a.CID, a.Port, nil)
		if err != nil {
			return nil, err
		}
		return l, nil
	case "unix":
		return listenUnix(a.Path)
	default:
		return net.Listen("tcp", a.HostPort)
	}
}

// CheckListen reports whether Listen accepts a without trying it: TCP only on a loopback IP. A
// program checks its addresses with it before any costly start-up work (attestd does, before
// its gates and keys).
func (a Addr) CheckListen() error {
	if a.Network != "tcp" {
		return nil
	}
	host, _, _ := net.SplitHostPort(a.HostPort)
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("vsockrpc: address %q: tcp listens only on a loopback IP (127.0.0.1 or ::1)", a)
	}
	return nil
}

// dialAddr connects to a.
func dialAddr(ctx context.Context, a Addr) (net.Conn, error) {
	switch a.Network {
	case "vsock":
		if a.CID == AnyCID || a.Port == 0 {
			return nil, fmt.Errorf("vsockrpc: dial %s: need a context id and a port", a)
		}
		c, err := vsock.DialContext(ctx, a.CID, a.Port, nil)
		if err != nil {
			return nil, err
		}
		return c, nil
	case "unix":
		var d net.Dialer
		return d.DialContext(ctx, "unix", a.Path)
	default:
		var d net.Dialer
		return d.DialContext(ctx, "tcp", a.HostPort)
	}
}

// unixListener removes its socket on Close if the path still names it.
type unixListener struct {
	*net.UnixListener
	path string
	fi   os.FileInfo
}

func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.fi) {
		os.Remove(l.path)
	}
	return err
}

func listenUnix(path string) (net.Listener, error) {
	if err := checkStale(path); err != nil {
		return nil, err
	}
	// bind(2) creates the socket with the umask's mode; create it in a private directory, set
	// 0600, then rename it into place.
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".vsockrpc")
	if err != nil {
		return nil, fmt.Errorf("vsockrpc: listen unix %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	tmpPath := filepath.Join(tmp, "s")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmpPath, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("vsockrpc: listen unix %s: %w", path, err)
	}
	ul.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		ul.Close()
		return nil, fmt.Errorf("vsockrpc: listen unix %s: %w", path, err)
	}
	if err := os.Chmod(tmpPath, 0o600); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(tmpPath)
	if err != nil {
		return fail(err)
	}
	if err := os.Rename(tmpPath, path); err != nil {
		return fail(err)
	}
	return &unixListener{UnixListener: ul, path: path, fi: fi}, nil
}

// checkStale returns nil if path is free or holds a socket nobody listens on.
func checkStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vsockrpc: listen unix %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("vsockrpc: listen unix %s: exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("vsockrpc: listen unix %s: %w", path, syscall.EADDRINUSE)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil
	}
	return fmt.Errorf("vsockrpc: listen unix %s: %w", path, err)
}
