// Package dashboard is ddbtrack's web dashboard as an [http.Handler] that a
// service mounts in its own server: counts per status, a chart of status
// changes, lists of failed, ignored, running, stuck and scheduled tasks
// with when each may start, each task in full, and actions to requeue,
// reset, cancel and make due now. `ddbtrack serve` is this handler on a
// port of its own.
//
// [New] takes the job's own tracker, so the dashboard shows the job's
// statuses by the names its enum gives them:
//
//	h, err := dashboard.New(tracker, dashboard.Options{Prefix: "/ops/tasks"})
//	...
//	mux.Handle("/ops/tasks/", h)
//
// Pages are rendered on the server with html/template, which escapes task
// IDs, data and error text for the context they appear in; the templates,
// style sheet and the one small script are embedded, so there is no build
// step and nothing is fetched from elsewhere.
//
// # Security
//
// The dashboard has no login, so the service that mounts it decides who
// can reach it, for example behind its own authentication middleware;
// `ddbtrack serve` binds 127.0.0.1. Within that:
//   - Actions are POSTs. Each carries a per-handler random token, both in
//     a hidden form field and in a SameSite=Strict cookie scoped to the
//     prefix, and the request must not come from another site:
//     [http.CrossOriginProtection] checks the browser's Sec-Fetch-Site and
//     Origin headers.
//   - Pages that read tasks are refused to requests the browser marks as
//     coming from another site (Sec-Fetch-Site), so no other page can make
//     the operator's browser read a big job's whole index. A link followed
//     from another site, such as a chat message, gets a page that asks for
//     one more click instead.
//   - The Host header must be an IP address, localhost or one of
//     Options.AllowHosts. That defeats DNS rebinding, where another site
//     points its own name at 127.0.0.1 to read pages, token included.
//   - A Content-Security-Policy allows scripts and styles from the dashboard
//     only, never inline, so even a template mistake could not run a task's
//     text as script.
//   - Options.ReadOnly removes every action from the pages and refuses
//     every POST.
package dashboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configures a dashboard. The zero value serves at the root of the
// server, with actions, no reloading, and the host check for IP addresses
// and localhost only.
type Options struct {
	// Prefix is the path the dashboard is mounted at, such as
	// "/ops/tasks": every link and form starts with it, and the handler
	// expects requests for the paths under it, as http.ServeMux passes
	// them to a handler registered for "/ops/tasks/" (do not strip the
	// prefix). Defaults to "", the root.
	Prefix string
	// Table is the table's name as the page header shows it. Defaults to
	// the tracker's table.
	Table string
	// ReadOnly hides every action and refuses every POST. Defaults to
	// false.
	ReadOnly bool
	// Refresh is how often the overview reloads itself. Defaults to 0,
	// which turns reloading off.
	Refresh time.Duration
	// AllowHosts lists host names, besides IP addresses and localhost,
	// that requests may name in their Host header, such as the service's
	// own name or that of a proxy in front of it. Defaults to none.
	AllowHosts []string
	// Now is the clock for "stuck", ages and the chart's window. Defaults
	// to time.Now.
	Now func() time.Time
	// Logger receives actions taken and unexpected errors. Defaults to
	// slog.Default().
	Logger *slog.Logger
}

// Handler is the dashboard of one job. It is safe for concurrent use.
type Handler struct {
	handler http.Handler
	check   func(ctx context.Context) ([]string, error)
}

// ServeHTTP serves the dashboard.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.handler.ServeHTTP(w, r)
}

// Check reads one task of each of the job's statuses, to find out early
// what would otherwise show on the first page: it returns an error, with
// what to do about it, when the table or its status index does not exist,
// and warnings when the names stored with the tasks are not the names the
// tracker's enum gives their statuses (the tracker is not the job's), or
// when the job has no tasks at all. Pages show the warnings too.
//
// New makes no request, so call Check once at start to fail early; if it
// is never called, the first page to need it calls it. It costs one small
// query per status and shard.
func (h *Handler) Check(ctx context.Context) ([]string, error) {
	return h.check(ctx)
}

// New returns the dashboard of the tracker's job. It makes no request and
// starts no goroutine.
func New[S ddbtrack.Status](tr *ddbtrack.Tracker[S], opts Options) (*Handler, error) {
	if tr == nil {
		return nil, errors.New("dashboard: the tracker is nil: pass the job's *ddbtrack.Tracker")
	}
	prefix := strings.TrimSuffix(opts.Prefix, "/")
	if prefix != "" && (!strings.HasPrefix(prefix, "/") || strings.ContainsAny(prefix, "?#")) {
		return nil, fmt.Errorf("dashboard: Options.Prefix %q is not a path: use one that starts with a slash, such as \"/ops/tasks\", or \"\" for the root", opts.Prefix)
	}
	opts.Prefix = prefix
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	job := ops.NewJob(tr)
	if opts.Table == "" {
		opts.Table = job.Table()
	}
	s, err := newServer(job, opts)
	if err != nil {
		return nil, err
	}
	check := func(ctx context.Context) ([]string, error) {
		w, empty, err := s.health.now(ctx)
		if empty != "" {
			w = append(slices.Clone(w), empty)
		}
		return w, err
	}
	return &Handler{handler: s.routes(), check: check}, nil
}

// health keeps what the dashboard's check found about the stored names,
// for every page to show. The check runs once, on the first page that
// needs it or from Handler.Check, and again after a failure.
type health struct {
	// run reads the job and returns the warnings that stay true (names
	// that do not match) and the one that may stop being (no tasks yet).
	run func(ctx context.Context) (lasting []string, empty string, err error)

	mu       sync.Mutex
	done     bool
	warnings []string
}

// ensure runs the check unless it has run.
func (h *health) ensure(ctx context.Context) ([]string, error) {
	h.mu.Lock()
	done := h.done
	h.mu.Unlock()
	if done {
		return h.known(), nil
	}
	w, _, err := h.now(ctx)
	return w, err
}

// now runs the check.
func (h *health) now(ctx context.Context) (lasting []string, empty string, err error) {
	lasting, empty, err = h.run(ctx)
	if err != nil {
		return nil, "", err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.done, h.warnings = true, lasting
	return lasting, empty, nil
}

// known returns the warnings found so far, without making a request.
func (h *health) known() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.warnings
}
