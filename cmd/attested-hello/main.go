// Command attested-hello is an example HTTPS server with attested TLS
// (package attestedtls): run inside the enclave next to attestd, it serves
// "hello" and /.well-known/attestation with a key that never leaves its
// process, bound by attestation documents from attestd's local API.
//
//	attested-hello --agent unix:///run/attestd/local.sock --listen 127.0.0.1:8443
//
// Self-signed mode by default: the certificate names the --listen host (and
// every --host) and carries the document. WebPKI mode with --cert and --key:
// the application's own certificate, the document at the endpoint.
//
// Exit codes: 0 after SIGINT/SIGTERM, 1 on failure, 2 on a usage error.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/attestd/attestd/attestedtls"
	"github.com/attestd/attestd/internal/cli"
	"github.com/attestd/attestd/internal/cliflag"
	"github.com/attestd/attestd/vsockrpc"
)

type hostsFlag []string

func (h *hostsFlag) String() string { return strings.Join(*h, ",") }
func (h *hostsFlag) Set(v string) error {
	*h = append(*h, v)
	return nil
}

const usage = `usage: attested-hello --agent ADDR --listen HOST:PORT [--host NAME]... [--cert FILE --key FILE]
       attested-hello --version

Serves HTTPS with attested TLS: GET / answers hello, GET /.well-known/attestation
the attestation document (docs/attested-tls.md). Documents come from attestd's
local API at --agent and are renewed so that none served is older than
--max-doc-age. Check it with: attest tls-check https://HOST:PORT --pcr ...

flags:
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("attested-hello", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	agentAddr := fs.String("agent", "", "attestd's local API, `ADDR` such as unix:///run/attestd/local.sock")
	listen := fs.String("listen", "", "listen on `HOST:PORT` (the self-signed certificate names HOST)")
	var hosts hostsFlag
	fs.Var(&hosts, "host", "another `NAME` (DNS name or IP) for the self-signed certificate (repeatable)")
	certFile := fs.String("cert", "", "WebPKI mode: the certificate chain, `FILE.pem`")
	keyFile := fs.String("key", "", "WebPKI mode: its private key, `FILE.pem` (ECDSA P-256/P-384 or Ed25519)")
	maxAge := fs.Duration("max-doc-age", attestedtls.DefaultMaxDocumentAge, "renew so that no served document is older than this `DURATION`")
	debug := fs.Bool("debug", false, "log at debug level")
	version := fs.Bool("version", false, "print the version and exit")
	cliflag.RefuseEmpty(fs)
	usageErr := func(format string, a ...any) int {
		return cli.ReportUsage(stderr, "attested-hello", fmt.Errorf(format, a...))
	}
	if err := cliflag.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			cliflag.PrintHelp(stdout, fs, usage)
			return 0
		}
		return usageErr("%v", err)
	}
	switch {
	case *version:
		fmt.Fprintln(stdout, cli.VersionLine("attested-hello"))
		return 0
	case fs.NArg() > 0:
		return usageErr("unexpected argument %q", fs.Arg(0))
	case *agentAddr == "":
		return usageErr("--agent is required")
	case *listen == "":
		return usageErr("--listen is required")
	case (*certFile == "") != (*keyFile == ""):
		return usageErr("--cert and --key go together")
	}
	if _, err := vsockrpc.ParseAddr(*agentAddr); err != nil {
		return usageErr("--agent: %v", err)
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return usageErr("--listen: %v", err)
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg := attestedtls.ServerConfig{MaxDocumentAge: *maxAge, Logger: log}
	if *certFile != "" {
		c, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return usageErr("--cert/--key: %v", err)
		}
		cfg.Certificate = &c
	} else {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			if len(hosts) == 0 {
				return usageErr("--listen %s names no host for the certificate: add --host NAME", *listen)
			}
		} else {
			cfg.Hosts = append(cfg.Hosts, host)
		}
		cfg.Hosts = append(cfg.Hosts, hosts...)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	agent, err := vsockrpc.Dial(dctx, *agentAddr)
	cancel()
	if err != nil {
		log.Error("cannot reach attestd", "error", err.Error())
		return 1
	}
	defer agent.Close()
	cfg.Attester = agent
	srv, err := attestedtls.NewServer(ctx, cfg)
	if err != nil {
		log.Error("attested TLS", "error", err.Error())
		return 1
	}
	go srv.Run(ctx)

	mux := http.NewServeMux()
	mux.Handle(attestedtls.WellKnownPath, srv.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "hello from an attested enclave\n")
	})
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("listen", "error", err.Error())
		return 1
	}
	hs := &http.Server{Handler: mux, TLSConfig: srv.TLSConfig(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	mode := "self-signed"
	if cfg.Certificate != nil {
		mode = "webpki"
	}
	_, ts := srv.Document()
	log.Info("attested-hello ready", "listen", l.Addr().String(), "mode", mode, "hosts", strings.Join(cfg.Hosts, ","),
		"document", ts.Format(time.RFC3339Nano))
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(l, "", "") }()
	select {
	case err := <-errc:
		log.Error("serve", "error", err.Error())
		return 1
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	hs.Shutdown(sctx)
	log.Info("attested-hello stopped")
	return 0
}
