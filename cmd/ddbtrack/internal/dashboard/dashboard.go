// Package dashboard serves ddbtrack's web dashboard: counts per status, a
// chart of status changes, lists of failed, ignored, running and stuck
// tasks, each task in full, and actions to requeue and reset.
//
// Pages are rendered on the server with html/template, which escapes task
// IDs, data and error text for the context they appear in; the templates,
// style sheet and the one small script are embedded, so there is no build
// step and nothing is fetched from elsewhere.
//
// # Security
//
// The dashboard has no login, so [Options] and the caller decide who can
// reach it; `ddbtrack serve` binds 127.0.0.1. Within that:
//   - Actions are POSTs. Each carries a per-process random token, both in a
//     hidden form field and in a SameSite=Strict cookie, and the request
//     must not come from another site: [http.CrossOriginProtection] checks
//     the browser's Sec-Fetch-Site and Origin headers.
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
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/cmd/ddbtrack/internal/ops"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configures a dashboard.
type Options struct {
	// Tracker reads and changes the job's tasks. Required.
	Tracker *ddbtrack.Tracker[ops.Code]
	// Statuses names the job's statuses. Required.
	Statuses *ops.Statuses
	// Table is the table's name, shown in the page header.
	Table string
	// ReadOnly hides every action and refuses every POST.
	ReadOnly bool
	// Refresh is how often the overview reloads itself. Defaults to 0,
	// which turns reloading off.
	Refresh time.Duration
	// AllowHosts lists host names, besides IP addresses and localhost,
	// that requests may name in their Host header, such as the name of a
	// proxy in front of the dashboard. Defaults to none.
	AllowHosts []string
	// Now is the clock for "stuck", ages and the chart's window. Defaults
	// to time.Now.
	Now func() time.Time
	// Logger receives actions taken and unexpected errors. Defaults to
	// slog.Default().
	Logger *slog.Logger
}

// Server is the dashboard's http.Handler.
type Server struct {
	opts    Options
	tr      *ddbtrack.Tracker[ops.Code]
	st      *ops.Statuses
	job     string
	log     *slog.Logger
	pages   map[string]*template.Template
	handler http.Handler

	// token guards actions against cross-site requests. It lives as long
	// as the process: a restart invalidates open pages' forms, which then
	// fail with a message that says to reload.
	token      string
	cookieName string
}

// New returns a dashboard. It makes no request to DynamoDB.
func New(opts Options) (*Server, error) {
	if opts.Tracker == nil || opts.Statuses == nil {
		return nil, errors.New("dashboard: Options.Tracker and Options.Statuses are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{
		opts: opts,
		tr:   opts.Tracker,
		st:   opts.Statuses,
		job:  opts.Tracker.Config().Job,
		log:  opts.Logger,
	}
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	s.token = hex.EncodeToString(b[:])
	// Cookies are shared by every port of a host, so two dashboards on one
	// machine would overwrite each other's cookie under one name.
	sum := sha256.Sum256([]byte(s.token))
	s.cookieName = "ddbtrack_csrf_" + hex.EncodeToString(sum[:4])

	var err error
	if s.pages, err = parsePages(s.funcs()); err != nil {
		return nil, err
	}

	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handle(s.overview))
	mux.HandleFunc("GET /tasks", s.handle(s.tasks))
	mux.HandleFunc("GET /task", s.handle(s.task))
	mux.HandleFunc("GET /search", s.handle(s.search))
	mux.HandleFunc("POST /requeue", s.action(s.requeue))
	mux.HandleFunc("POST /reset", s.action(s.reset))
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, http.FileServerFS(static))))

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusForbidden, "This request came from another site, so it was refused. Use the dashboard's own buttons.")
	}))
	s.handler = s.checkHost(securityHeaders(cop.Handler(mux)))
	return s, nil
}

// ServeHTTP serves the dashboard.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

func parsePages(funcs template.FuncMap) (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"overview", "tasks", "task", "confirm", "error"} {
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}

// securityHeaders sets the headers every response carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// Task IDs and cursors are in URLs; do not hand them to other sites.
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func cacheFor(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", int(d.Seconds())))
		next.ServeHTTP(w, r)
	})
}

// checkHost refuses requests for host names the dashboard does not answer
// to. A page on another site can point its own name at 127.0.0.1 (DNS
// rebinding) and then read the dashboard as same-origin, token and all; the
// browser still sends that name in Host, so refusing it closes the hole.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		ok := net.ParseIP(strings.Trim(host, "[]")) != nil ||
			host == "localhost" || strings.HasSuffix(host, ".localhost") ||
			slices.ContainsFunc(s.opts.AllowHosts, func(a string) bool { return strings.EqualFold(a, host) })
		if !ok {
			http.Error(w, fmt.Sprintf("ddbtrack dashboard: host %q is not allowed; open it by IP address or localhost, or restart it with --allow-host %s", host, host), http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handle adapts a page handler that may fail.
func (s *Server) handle(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.failErr(w, r, err)
		}
	}
}

// maxForm bounds an action's body: a hundred task IDs and the filter.
const maxForm = 512 << 10

// action wraps a handler that changes tasks: refused when read-only, and
// only with the form's token matching both the process's and the cookie's.
func (s *Server) action(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.ReadOnly {
			s.fail(w, r, http.StatusForbidden, "This dashboard is read-only (--read-only): it takes no actions. Use the ddbtrack command, or restart the dashboard without --read-only.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			s.fail(w, r, http.StatusBadRequest, "The form could not be read: "+err.Error())
			return
		}
		cookie, err := r.Cookie(s.cookieName)
		if err != nil || !s.validToken(r.PostForm.Get("csrf")) || !s.validToken(cookie.Value) {
			s.fail(w, r, http.StatusForbidden, "The form's security token is missing or stale, for example because the dashboard was restarted. Reload the page and try again.")
			return
		}
		if err := h(w, r); err != nil {
			s.failErr(w, r, err)
		}
	}
}

func (s *Server) validToken(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(s.token)) == 1
}

// setTokenCookie gives the browser the cookie half of the token. Every page
// sets it, so it is there whenever a form is.
func (s *Server) setTokenCookie(w http.ResponseWriter) {
	if s.opts.ReadOnly {
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName,
		Value:    s.token,
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
}

// requestError is an error in what the request asked for.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// failErr shows err with the status code that fits it.
func (s *Server) failErr(w http.ResponseWriter, r *http.Request, err error) {
	var re *requestError
	switch {
	case errors.As(err, &re):
		s.fail(w, r, re.status, re.msg)
	case errors.Is(err, ddbtrack.ErrTaskNotFound):
		s.fail(w, r, http.StatusNotFound, err.Error())
	case errors.Is(err, ddbtrack.ErrInvalidOption):
		s.fail(w, r, http.StatusBadRequest, err.Error())
	case errors.Is(err, ddbtrack.ErrTaskLocked):
		s.fail(w, r, http.StatusConflict, err.Error())
	case r.Context().Err() != nil:
		// The browser went away; nobody is left to read an error page.
	default:
		s.log.Error("dashboard request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		s.fail(w, r, http.StatusInternalServerError, err.Error())
	}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, status, "error", errorPage{Status: status, StatusText: http.StatusText(status), Message: msg})
}

type errorPage struct {
	Status     int
	StatusText string
	Message    string
}

// page is what the layout needs besides the page's own data.
type page struct {
	Job, Table string
	ReadOnly   bool
	CSRF       string
	Refresh    int // seconds; 0 for none
	Now        time.Time
	Nav        string // the list tab or page to highlight
	Data       any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	p := page{Job: s.job, Table: s.opts.Table, ReadOnly: s.opts.ReadOnly, CSRF: s.token, Now: s.opts.Now(), Data: data}
	switch d := data.(type) {
	case overviewPage:
		p.Nav, p.Refresh = "overview", int(s.opts.Refresh.Seconds())
	case tasksPage:
		p.Nav = d.Query.Status
	}
	if s.opts.ReadOnly {
		p.CSRF = ""
	}
	var buf strings.Builder
	if err := s.pages[name].Execute(&buf, p); err != nil {
		s.log.Error("render dashboard page", "page", name, "error", err)
		http.Error(w, "ddbtrack dashboard: cannot render the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	s.setTokenCookie(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(buf.String()))
}
