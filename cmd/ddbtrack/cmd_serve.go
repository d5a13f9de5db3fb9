package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ddbtrack/ddbtrack/dashboard"
)

const envAddr = "DDBTRACK_ADDR"

var cmdServe = &command{
	name:  "serve",
	args:  "[flags]",
	short: "Serve the web dashboard: counts, a chart, task lists, requeue and cancel.",
	long: `
The dashboard listens on 127.0.0.1 only, unless --addr says otherwise. It
has no login: anyone who can reach the port can requeue, reset and cancel
tasks, so bind another address only behind a proxy that authenticates, and
prefer --read-only there.

Actions are POST forms protected against cross-site request forgery: a
secret token per process in each form and in a SameSite=Strict cookie, the
browser's Sec-Fetch-Site and Origin headers, and a Host check that defeats
DNS rebinding. Pages carry a Content-Security-Policy that forbids inline
script.

The overview refreshes itself every --refresh. Each refresh counts the
job's tasks, which DynamoDB bills as reads of the whole status index.`,
	define: func(fs *flag.FlagSet) runFunc {
		addr := fs.String("addr", "127.0.0.1:8080", "`host:port` to listen on ($"+envAddr+")")
		readOnly := fs.Bool("read-only", false, "show tasks but offer no actions, and refuse them")
		refresh := fs.Duration("refresh", 30*time.Second, "how often the overview reloads itself; 0 turns it off")
		allowHosts := fs.String("allow-host", "", "extra host `names` the dashboard may be reached by, comma-separated, e.g. when behind a proxy (IP addresses and localhost are always allowed)")
		return func(ctx context.Context, s *session, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			if v := s.getenv(envAddr); v != "" && !flagSet(fs, "addr") {
				*addr = v
			}
			if *refresh != 0 && *refresh < 2*time.Second {
				return usagef("--refresh %v is too short: use at least 2s, or 0 to turn it off", *refresh)
			}
			var hosts []string
			for h := range strings.SplitSeq(*allowHosts, ",") {
				if h = strings.TrimSpace(h); h != "" {
					hosts = append(hosts, h)
				}
			}
			log := slog.New(slog.NewTextHandler(s.stderr, nil))
			h, err := dashboard.New(s.tracker, dashboard.Options{
				ReadOnly:   *readOnly,
				Refresh:    *refresh,
				AllowHosts: hosts,
				Now:        s.now,
				Logger:     log,
			})
			if err != nil {
				return err
			}
			// A mistyped table would otherwise start a dashboard whose
			// every page fails; fail here, with the fix, instead. The
			// dashboard logs its warnings (wrong status names, no tasks).
			if _, err := h.Check(ctx); err != nil {
				return err
			}
			ln, err := net.Listen("tcp", *addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w; pick another port with --addr", *addr, err)
			}
			mode := ""
			if *readOnly {
				mode = " (read-only)"
			}
			fmt.Fprintf(s.stdout, "Dashboard for job %s in table %s%s: %s\n", s.common.job, s.common.table, mode, browseURL(ln.Addr()))
			if host, _, _ := net.SplitHostPort(*addr); !isLoopbackHost(host) {
				fmt.Fprintf(s.stderr, "Warning: listening on %s, which is reachable from other machines. The dashboard has no login; use --read-only or an authenticating proxy.\n", *addr)
			}
			srv := &http.Server{
				Handler:           h,
				ReadHeaderTimeout: 10 * time.Second,
				ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			}
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ln) }()
			select {
			case err := <-done:
				return err
			case <-ctx.Done():
				shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				if err := srv.Shutdown(shutdownCtx); err != nil {
					return err
				}
				if err := <-done; !errors.Is(err, http.ErrServerClosed) {
					return err
				}
				return nil // Ctrl-C is how the dashboard is meant to stop.
			}
		}
	},
}

// browseURL is the address to open in a browser for a listener. One bound
// to every interface (":8080", "[::]:8080") is reached on this machine at
// localhost; "http://[::]:8080/" is not an address a browser opens.
func browseURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
