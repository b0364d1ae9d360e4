package main

import (
	"flag"
	"io"
	"log/slog"

	"github.com/attestd/attestd/internal/cli"
)

// serveFlags are the flags of nsm-mock serve.
type serveFlags struct {
	dir, mount, faults string
	watchStdin         bool
	logLevel           slog.Level
	logJSON            bool
}

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var f serveFlags
	fs.StringVar(&f.dir, "dir", "", "mock NSM state `directory` made by nsm-mock init (required)")
	fs.StringVar(&f.mount, "mount", "", "mount point `directory` (created if missing); the device is DIR/nsm (required)")
	fs.StringVar(&f.faults, "faults", "", "fault-injection `file` (JSON, the faults.json format); replaces D/faults.json")
	fs.BoolVar(&f.watchStdin, "watch-stdin", false, "also shut down when stdin reaches EOF (ties the server to a supervisor's pipe)")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	fs.BoolVar(&f.logJSON, "log-json", false, "log JSON records instead of text")
	if err := parseFlags(fs, "serve --dir D --mount DIR [--faults FILE] [--watch-stdin] [--log-level L] [--log-json]",
		"Mounts a FUSE file system on DIR whose file DIR/nsm answers the NSM ioctl\n"+
			"(0xC0200A00) with the software NSM of D, until SIGTERM or SIGINT; then unmounts.\n"+
			"A stale mount left at DIR by a killed server is detached first. Needs root\n"+
			"(CAP_SYS_ADMIN) and /dev/fuse. Bind DIR/nsm over /dev/nsm in a private mount\n"+
			"namespace to serve unmodified programs (scripts/nsm-run.sh does this).", args, stdout); err != nil {
		return err
	}
	if f.dir == "" || f.mount == "" {
		return cli.Usagef("--dir and --mount are required")
	}
	var h slog.Handler
	opts := &slog.HandlerOptions{Level: f.logLevel}
	if f.logJSON {
		h = slog.NewJSONHandler(stderr, opts)
	} else {
		h = slog.NewTextHandler(stderr, opts)
	}
	return serve(f, slog.New(h))
}
