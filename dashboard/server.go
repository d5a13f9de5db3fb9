package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
)

// server is the dashboard of one job whose statuses are S.
type server[S ddbtrack.Status] struct {
	opts  Options
	job   *ops.Job[S]
	st    *ops.Statuses[S]
	log   *slog.Logger
	pages map[string]*template.Template
	// health is what the check of the table and its names found.
	health *health
	// counter keeps the job's latest counts, so that an overview that
	// falls on a refresh of the job's shared counts does not wait for a
	// full count: the dashboard shows the counts it had, dated, and the
	// next load has the new ones.
	counter *ops.Counter[S]

	// token guards actions against cross-site requests. It lives as long
	// as the handler: a restart invalidates open pages' forms, which then
	// fail with a message that says to reload.
	token      string
	cookieName string
}

func newServer[S ddbtrack.Status](job *ops.Job[S], opts Options) (*server[S], error) {
	s := &server[S]{opts: opts, job: job, st: job.Statuses(), log: opts.Logger, counter: job.Counter(0)}
	s.health = &health{run: s.runCheck}
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
	return s, nil
}

// routes builds the handler: the pages under the prefix, behind the host
// check, the security headers and the cross-site checks.
func (s *server[S]) routes() http.Handler {
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // The directory is embedded at build time.
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.read(s.overview))
	mux.HandleFunc("GET /tasks", s.read(s.tasks))
	mux.HandleFunc("GET /task", s.read(s.task))
	mux.HandleFunc("GET /errors", s.read(s.errors))
	mux.HandleFunc("GET /search", s.read(s.search))
	mux.HandleFunc("POST /requeue", s.action(s.requeue))
	mux.HandleFunc("POST /errors/requeue", s.action(s.requeueGroup))
	mux.HandleFunc("POST /reset", s.action(s.reset))
	mux.HandleFunc("POST /cancel", s.action(s.cancel))
	mux.HandleFunc("POST /due-now", s.action(s.dueNow))
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, http.FileServerFS(static))))

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusForbidden, "This request came from another site, so it was refused. Use the dashboard's own buttons.")
	}))
	return s.checkHost(securityHeaders(s.underPrefix(cop.Handler(mux))))
}

// underPrefix serves the paths under the prefix, without it, to next.
// Links are built with the prefix (see link), so the handler works at any
// mount point without the service stripping anything.
func (s *server[S]) underPrefix(next http.Handler) http.Handler {
	if s.opts.Prefix == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, s.opts.Prefix)
		if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
			http.NotFound(w, r)
			return
		}
		if rest == "" {
			// The overview is at the prefix with a slash, so that the
			// cookie's path covers it.
			http.Redirect(w, r, s.opts.Prefix+"/", http.StatusMovedPermanently)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = rest, ""
		next.ServeHTTP(w, r2)
	})
}

// link returns the URL of a dashboard path, with the prefix.
func (s *server[S]) link(path string) string { return s.opts.Prefix + path }

func parsePages(funcs template.FuncMap) (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"overview", "tasks", "task", "errors", "confirm", "cancel", "error", "elsewhere"} {
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
func (s *server[S]) checkHost(next http.Handler) http.Handler {
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
			http.Error(w, fmt.Sprintf("ddbtrack dashboard: host %q is not allowed; open it by IP address or localhost, or allow the name (ddbtrack serve --allow-host %s, or Options.AllowHosts)", host, host), http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// read wraps a handler that reads tasks. A browser says with
// Sec-Fetch-Site where a request comes from; one from another site is
// refused before anything is read, because every page of the dashboard
// reads DynamoDB and some read a big job's whole index: any page the
// operator visits could otherwise make their browser do that, over and
// over. A link followed from another site (a top-level navigation) gets a
// page that offers the same link again, which is then same-origin, so
// links in chat and tickets still work with one more click. Requests
// without the header (curl, older browsers) and those the operator typed
// or bookmarked ("none") are served.
func (s *server[S]) read(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Sec-Fetch-Site") {
		case "same-site", "cross-site":
			if r.Header.Get("Sec-Fetch-Mode") == "navigate" && r.Header.Get("Sec-Fetch-Dest") == "document" {
				s.render(w, r, http.StatusForbidden, "elsewhere", elsewherePage{URL: s.link(r.URL.RequestURI())})
				return
			}
			s.fail(w, r, http.StatusForbidden, "This request came from another site, so it was refused: the dashboard reads tasks only for its own pages.")
			return
		}
		if err := h(w, r); err != nil {
			s.failErr(w, r, err)
		}
	}
}

type elsewherePage struct{ URL string }

// maxForm bounds an action's body: MaxIDs encoded task IDs of DynamoDB's
// largest key, and the filter.
const maxForm = 2 << 20

// action wraps a handler that changes tasks: refused when read-only, and
// only with the form's token matching both the handler's and the cookie's.
func (s *server[S]) action(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.ReadOnly {
			s.fail(w, r, http.StatusForbidden, "This dashboard is read-only: it takes no actions. Use the ddbtrack command, or restart the dashboard without --read-only.")
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

func (s *server[S]) validToken(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(s.token)) == 1
}

// setTokenCookie gives the browser the cookie half of the token. Every page
// sets it, so it is there whenever a form is.
func (s *server[S]) setTokenCookie(w http.ResponseWriter) {
	if s.opts.ReadOnly {
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName,
		Value:    s.token,
		Path:     s.link("/"),
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
}

// encodeText makes a string safe to send through a form and back. A
// browser turns every line feed in a form's values into CR LF, so a task
// ID with a newline would come back as another ID; base64 has no line
// breaks.
func encodeText(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func decodeText(field, s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", badRequest("The form's %s field is damaged. Reload the page and try again.", field)
	}
	return string(b), nil
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

// failErr shows err, told as an operator needs it (see ops.Explain), with
// the status code that fits it.
func (s *server[S]) failErr(w http.ResponseWriter, r *http.Request, err error) {
	var re *requestError
	status := http.StatusBadGateway // DynamoDB, the network or credentials.
	switch {
	case errors.As(err, &re):
		s.fail(w, r, re.status, re.msg)
		return
	case ops.IsNotFound(err):
		status = http.StatusNotFound
	case ops.IsBadInput(err):
		status = http.StatusBadRequest
	case ops.IsLocked(err), isRefusal(err):
		status = http.StatusConflict
	case r.Context().Err() != nil:
		return // The browser went away; nobody is left to read an error page.
	default:
		s.log.ErrorContext(r.Context(), "dashboard request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	e := s.job.Explain(err)
	e.Problem = capitalize(e.Problem) + "."
	if e.Fix != "" {
		e.Fix = capitalize(e.Fix) + "."
	}
	s.explain(w, r, status, e)
}

// fail shows a problem the dashboard itself found.
func (s *server[S]) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.explain(w, r, status, ops.Explanation{Problem: msg})
}

func (s *server[S]) explain(w http.ResponseWriter, r *http.Request, status int, e ops.Explanation) {
	s.render(w, r, status, "error", errorPage{Status: status, StatusText: http.StatusText(status), Explanation: e})
}

type errorPage struct {
	Status     int
	StatusText string
	ops.Explanation
}

// page is what the layout needs besides the page's own data.
type page struct {
	Job, Table string
	Base       string // the prefix, for links
	ReadOnly   bool
	CSRF       string
	Refresh    int // seconds; 0 for none
	Now        time.Time
	Nav        string // the list tab or page to highlight
	Warnings   []string
	Data       any
}

func (s *server[S]) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	p := page{
		Job: s.job.Name(), Table: s.opts.Table, Base: s.opts.Prefix, ReadOnly: s.opts.ReadOnly,
		CSRF: s.token, Now: s.opts.Now(), Data: data, Warnings: s.health.known(),
	}
	switch d := data.(type) {
	case overviewPage[S]:
		p.Nav, p.Refresh = "overview", int(s.opts.Refresh.Seconds())
	case tasksPage[S]:
		p.Nav = d.Query.Status
	case errorsPage:
		p.Nav = "errors"
	}
	if s.opts.ReadOnly {
		p.CSRF = ""
	}
	var buf strings.Builder
	if err := s.pages[name].Execute(&buf, p); err != nil {
		s.log.ErrorContext(r.Context(), "render dashboard page", "page", name, "error", err)
		http.Error(w, "ddbtrack dashboard: cannot render the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	s.setTokenCookie(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(buf.String()))
}

// redirect sends the browser to a dashboard path after an action.
func (s *server[S]) redirect(w http.ResponseWriter, r *http.Request, path string, extra url.Values) {
	if len(extra) > 0 {
		sep := "&"
		if !strings.Contains(path, "?") {
			sep = "?"
		}
		path += sep + extra.Encode()
	}
	http.Redirect(w, r, s.link(path), http.StatusSeeOther)
}

// runCheck is Job.Check told as warnings for the pages.
func (s *server[S]) runCheck(ctx context.Context) (lasting []string, empty string, err error) {
	h, err := s.job.Check(ctx)
	if err != nil {
		return nil, "", err
	}
	for _, m := range h.Mismatches {
		w := capitalize(m.String()) +
			". The dashboard's tracker does not describe this job's statuses, so counts and lists file tasks under the wrong names: give it the job's own status enum (for ddbtrack serve, fix --statuses)."
		s.log.WarnContext(ctx, "dashboard: "+w)
		lasting = append(lasting, w)
	}
	if h.Empty {
		empty = capitalize(s.job.NoTasks(ctx)) + "."
		s.log.WarnContext(ctx, "dashboard: "+empty)
	}
	return lasting, empty, nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
