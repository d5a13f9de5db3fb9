package dashboard_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
	fixture "github.com/ddbtrack/ddbtrack/internal/dev/opsfixture"
)

// site is a dashboard on a test server, and a browser-like client for it:
// it keeps cookies and does not follow redirects, so tests see them.
type site struct {
	t      *testing.T
	fx     *fixture.Fixture
	srv    *httptest.Server
	client *http.Client
	// base is the path the dashboard is mounted at, which get and post
	// put before the paths they are given.
	base string
}

func newSite(t *testing.T, fx *fixture.Fixture, opts dashboard.Options) *site {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fx.Clock.Now
	}
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := dashboard.New(fx.Tracker, opts)
	require.NoError(t, err)
	return serve(t, fx, h)
}

// serve runs a handler on a test server, with a browser-like client.
func serve(t *testing.T, fx *fixture.Fixture, h http.Handler) *site {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	client := &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	return &site{t: t, fx: fx, srv: srv, client: client}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (s *site) do(req *http.Request) page {
	s.t.Helper()
	resp, err := s.client.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return page{resp.StatusCode, resp.Header, string(b)}
}

func (s *site) get(path string) page {
	s.t.Helper()
	req, err := http.NewRequestWithContext(s.t.Context(), http.MethodGet, s.srv.URL+s.base+path, nil)
	require.NoError(s.t, err)
	return s.do(req)
}

// post sends a form as the dashboard's own pages do: same origin.
func (s *site) post(path string, form url.Values, headers ...string) page {
	s.t.Helper()
	req, err := http.NewRequestWithContext(s.t.Context(), http.MethodPost, s.srv.URL+s.base+path, strings.NewReader(form.Encode()))
	require.NoError(s.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return s.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// token loads a page with a form and returns its token; loading it also
// sets the cookie half.
func (s *site) token() string {
	s.t.Helper()
	p := s.get("/task?id=t-fail-1")
	require.Equal(s.t, http.StatusOK, p.status, p.body)
	m := csrfRE.FindStringSubmatch(p.body)
	require.NotNil(s.t, m, "no csrf field in the page")
	return m[1]
}

func seeded(t *testing.T) *fixture.Fixture {
	fx := fixture.New(t)
	fx.Seed(t)
	return fx
}

func TestOverview(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.SeedHistory(t, 60)
	fx.Seed(t)
	s := newSite(t, fx, dashboard.Options{Refresh: 30 * time.Second})

	p := s.get("/")
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Equal(t, "text/html; charset=utf-8", p.header.Get("Content-Type"))
	require.Equal(t, "no-store", p.header.Get("Cache-Control"))
	require.Contains(t, p.header.Get("Content-Security-Policy"), "script-src 'self'")
	require.Equal(t, "DENY", p.header.Get("X-Frame-Options"))
	require.Contains(t, p.body, `<meta http-equiv="refresh" content="30">`)
	require.Contains(t, p.body, "job <b>nightly-import</b>")

	// A card per status, with its count, and one for stuck tasks.
	for _, want := range []string{
		`<span class="count">11</span>` + "\n    " + `<span class="name">s06_failed</span>`,
		`<span class="count">1</span>` + "\n    " + `<span class="name">stuck</span>`,
	} {
		require.Contains(t, p.body, want)
	}
	require.Contains(t, p.body, `href="/tasks?status=failed"`)
	require.Contains(t, p.body, `href="/tasks?status=stuck"`)

	// The chart draws the day of history, coloured by status.
	require.Contains(t, p.body, `<svg class="chart"`)
	require.Contains(t, p.body, `<rect class="s-succeeded"`)
	require.Contains(t, p.body, `<rect class="s-failed"`)
	require.Regexp(t, `<title>Jan 1 14:00 – 15:00 UTC: \d+ s0`, p.body)

	for _, w := range []string{"1h", "6h", "7d"} {
		p := s.get("/?window=" + w)
		require.Equal(t, http.StatusOK, p.status, p.body)
		require.Contains(t, p.body, "Status changes, last "+w)
	}
	p = s.get("/?window=2y")
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, p.body, "Unknown chart window")
}

func TestOverviewOfAnEmptyJob(t *testing.T) {
	t.Parallel()
	s := newSite(t, fixture.New(t), dashboard.Options{})
	p := s.get("/")
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, "No task changed status in the last 24h.")
	require.NotContains(t, p.body, `http-equiv="refresh"`, "Refresh 0 turns reloading off")
}

func TestTaskLists(t *testing.T) {
	t.Parallel()
	s := newSite(t, seeded(t), dashboard.Options{})

	for _, tc := range []struct {
		query string
		ids   []string
	}{
		{"status=failed", []string{fixture.XSS, "t-fail-2", "t-fail-1"}},
		{"", []string{fixture.XSS, "t-fail-2", "t-fail-1"}}, // Failed is the default.
		{"status=ignored", []string{"t-ignored"}},
		{"status=stuck", []string{"t-stuck"}},
		{"status=running", []string{"t-running", "t-stuck"}},
		{"status=s09_success", []string{"t-ok"}},
		{"status=0", []string{"t-pending"}},
		{"status=failed,ignored&error=connection+reset", []string{"t-fail-2", "t-fail-1"}},
		{"status=all&id=fail", []string{"t-fail-2", "t-fail-1"}},
		{"status=all&since=2025-01-02T03:13:00Z&until=2025-01-02+03:15", []string{fixture.XSS, "t-ignored"}},
		{"status=all&since=22m", []string{"t-running", "t-stuck", fixture.XSS, "t-ignored"}},
	} {
		p := s.get("/tasks?" + tc.query)
		require.Equal(t, http.StatusOK, p.status, "%s: %s", tc.query, p.body)
		require.Equal(t, tc.ids, listedIDs(t, p.body), tc.query)
	}

	p := s.get("/tasks?status=failed")
	require.Contains(t, p.body, `id="requeue-all"`)
	require.Contains(t, p.body, `name="ids" value="`+enc("t-fail-1")+`"`)
	p = s.get("/tasks?status=succeeded")
	require.NotContains(t, p.body, `id="requeue-all"`, "succeeded tasks are rerun with reset, one by one")

	for _, bad := range []string{"status=nope", "status=all&since=yesterday", "limit=0", "limit=x", "cursor=%21%21"} {
		p := s.get("/tasks?" + bad)
		require.Equal(t, http.StatusBadRequest, p.status, bad)
	}
}

var idRE = regexp.MustCompile(`<td class="id"><a href="[^"]*/task\?id=[^"]*"[^>]*>([^<]*)</a>`)

// listedIDs returns the task IDs a list page shows, unescaped.
func listedIDs(t *testing.T, body string) []string {
	t.Helper()
	ids := []string{}
	for _, m := range idRE.FindAllStringSubmatch(body, -1) {
		ids = append(ids, unescape(m[1]))
	}
	return ids
}

func unescape(s string) string { return html.UnescapeString(s) }

// TestPaging follows the next-page links to the end, with the clock moving
// between pages: the link pins the time of the first page, so "since 40m"
// and "stuck" select the same tasks throughout.
func TestPaging(t *testing.T) {
	t.Parallel()
	fx := seeded(t)
	clock := fixture.NewClock(fixture.Now)
	s := newSite(t, fx, dashboard.Options{Now: clock.Now})

	all := listedIDs(t, s.get("/tasks?status=all").body)
	require.Len(t, all, 8)
	var got []string
	next := "/tasks?status=all&since=40m&limit=3"
	for i := range 5 {
		p := s.get(next)
		require.Equal(t, http.StatusOK, p.status, p.body)
		got = append(got, listedIDs(t, p.body)...)
		if i > 0 {
			require.Contains(t, p.body, `">« First page</a>`)
		}
		clock.Advance(10 * time.Minute)
		m := regexp.MustCompile(`<a href="([^"]*)" id="next-page">`).FindStringSubmatch(p.body)
		if m == nil {
			break
		}
		next = unescape(m[1])
	}
	require.Equal(t, all, got)
}

func TestTaskPage(t *testing.T) {
	t.Parallel()
	fx := seeded(t)
	fx.Panic(t, "t-panic", nil)
	s := newSite(t, fx, dashboard.Options{})

	p := s.get("/task?id=t-fail-2")
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, `<span class="status s-failed" id="task-status">s06_failed</span> (6, failed)`)
	require.Contains(t, p.body, "Error history (2, newest first)")
	require.Less(t, strings.Index(p.body, "Attempt 2</b>"), strings.Index(p.body, "Attempt 1</b>"), "newest first")
	require.Contains(t, p.body, "s3://bucket/2024-12-30.csv")
	require.Contains(t, p.body, `id="requeue"`)
	require.Contains(t, p.body, `id="reset"`)

	p = s.get("/task?id=t-ok")
	require.Contains(t, p.body, `&#34;rows&#34;: 1234567890123`, "large numbers keep every digit")
	require.NotContains(t, p.body, `id="requeue"`, "a succeeded task is not requeued")
	require.Contains(t, p.body, "<dt>Expires</dt><dd>2025-04-02 03:07:00Z</dd>")

	p = s.get("/task?id=t-panic")
	require.Contains(t, p.body, "panic: assignment to entry in nil map")
	require.Contains(t, p.body, `<details class="stack" open><summary>Stack</summary><pre class="stack">goroutine `, "stacks are open")

	p = s.get("/task?id=t-stuck")
	require.Contains(t, p.body, "stuck: its lease expired")
	require.Contains(t, p.body, `held by <b id="lease-owner">worker-7</b> until 2025-01-02 03:30:00Z <small>(expired 5m ago)</small>`)
	require.Contains(t, p.body, `name="filter" value="status=stuck"`)

	p = s.get("/task?id=t-running")
	require.Contains(t, p.body, "(expires 6m from now)")
	require.NotContains(t, p.body, `id="requeue"`, "a live lease is not requeued")
	require.Contains(t, p.body, `id="reset" class="secondary" disabled`)

	p = s.get("/task?id=t-nope")
	require.Equal(t, http.StatusNotFound, p.status)
	require.Contains(t, p.body, `Task &#34;t-nope&#34; not found in job &#34;nightly-import&#34;.`)
	require.NotContains(t, p.body, "Tracker.Create", "no advice meant for Go code")
	require.Equal(t, http.StatusBadRequest, s.get("/task").status)
}

// TestUserTextIsEscaped checks that a task's ID, data and error cannot
// inject markup into any page.
func TestUserTextIsEscaped(t *testing.T) {
	t.Parallel()
	s := newSite(t, seeded(t), dashboard.Options{})
	escaped := `&lt;script&gt;window.__xss=1&lt;/script&gt;&lt;img src=x onerror=&#34;window.__xss=2&#34;&gt;`
	for _, path := range []string{
		"/tasks?status=failed",
		"/tasks?status=all",
		"/task?" + url.Values{"id": {fixture.XSS}}.Encode(),
		"/tasks?" + url.Values{"status": {"all"}, "error": {fixture.XSS}, "id": {fixture.XSS}}.Encode(),
	} {
		p := s.get(path)
		require.Equal(t, http.StatusOK, p.status, "%s: %s", path, p.body)
		require.NotContains(t, p.body, "<script>window", path)
		require.NotContains(t, p.body, "<img src=x", path)
		require.Contains(t, p.body, escaped, path)
		require.Equal(t, 1, strings.Count(p.body, "<script"), "%s: only the dashboard's own script tag", path)
	}
	p := s.get("/task?" + url.Values{"id": {fixture.XSS}}.Encode())
	require.Contains(t, p.body, `&#34;note&#34;: &#34;&lt;script&gt;window.__xss=1&lt;/script&gt;&lt;img src=x onerror=\&#34;window.__xss=2\&#34;&gt;&#34;`, "data is escaped")
	require.Contains(t, p.body, `<pre class="error">bad input `+escaped, "the error history is escaped")
	require.Contains(t, p.body, `name="ids" value="`+enc(fixture.XSS)+`"`, "IDs in forms are encoded")
	require.Contains(t, s.get("/tasks?status=failed").body, `title="`+escaped+`"`, "attributes are escaped")

	// An error page quotes the bad input, escaped.
	p = s.get("/tasks?" + url.Values{"status": {fixture.XSS}}.Encode())
	require.Equal(t, http.StatusBadRequest, p.status)
	require.NotContains(t, p.body, "<script>window")
}

func TestSearch(t *testing.T) {
	t.Parallel()
	s := newSite(t, seeded(t), dashboard.Options{})
	for q, want := range map[string]string{
		"t-ok":      "/task?id=t-ok",
		" t-ok ":    "/task?id=t-ok",
		"fail":      "/tasks?id=fail&status=all",
		fixture.XSS: "/task?" + url.Values{"id": {fixture.XSS}}.Encode(),
		"":          "/tasks?status=all",
	} {
		p := s.get("/search?q=" + url.QueryEscape(q))
		require.Equal(t, http.StatusSeeOther, p.status, q)
		require.Equal(t, want, p.header.Get("Location"), q)
	}
}

func TestRequeueSelected(t *testing.T) {
	t.Parallel()
	fx := seeded(t)
	s := newSite(t, fx, dashboard.Options{})
	form := url.Values{"csrf": {s.token()}, "filter": {"status=failed"}, "scope": {"selected"}, "ids": {enc("t-fail-1"), enc("t-ok")}}

	// The first post only counts, and asks to confirm.
	p := s.post("/requeue", form)
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, `<p id="confirm-count"><b>1</b> task will move to <b>s00_todo</b> (s06_failed, among 2 selected)`)
	require.Equal(t, "s06_failed", fx.Status(t, "t-fail-1"), "nothing moves before the confirmation")
	require.Contains(t, p.body, `<li><span class="id">t-ok</span>: task &#34;t-ok&#34; is s09_success, not s06_failed:`, "the page says why t-ok will not move")

	// The confirmation form carries the same selection.
	confirm := hiddenFields(t, p.body)
	require.Equal(t, []string{enc("t-fail-1"), enc("t-ok")}, confirm["ids"])
	require.Equal(t, []string{"yes"}, confirm["confirm"])
	p = s.post("/requeue", confirm)
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "/tasks?status=failed&moved=1&skipped=0", p.header.Get("Location"))
	require.Equal(t, "s00_todo", fx.Status(t, "t-fail-1"))
	require.Equal(t, "s09_success", fx.Status(t, "t-ok"))

	p = s.get(p.header.Get("Location"))
	require.Contains(t, p.body, "Requeued 1 task to s00_todo.")

	p = s.post("/requeue", url.Values{"csrf": {s.token()}, "filter": {"status=failed"}, "scope": {"selected"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, p.body, "No tasks were selected")
}

func TestRequeueAllMatching(t *testing.T) {
	t.Parallel()
	fx := seeded(t)
	s := newSite(t, fx, dashboard.Options{})
	p := s.post("/requeue", url.Values{"csrf": {s.token()}, "filter": {"status=failed,ignored&error=connection+reset&since=1h"}, "scope": {"all"}})
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, `<b>2</b> tasks will move to <b>s00_todo</b> (s06_failed or s10_ignore, due since 2025-01-02 02:35:00Z, error contains &#34;connection reset&#34;)`)
	confirm := hiddenFields(t, p.body)
	filter, err := url.ParseQuery(confirm.Get("filter"))
	require.NoError(t, err)
	require.Equal(t, "2025-01-02T02:35:00Z", filter.Get("since"), "the confirmation sends the time it counted with")

	p = s.post("/requeue", confirm)
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Contains(t, p.header.Get("Location"), "moved=2")
	require.Equal(t, "s00_todo", fx.Status(t, "t-fail-1"))
	require.Equal(t, "s00_todo", fx.Status(t, "t-fail-2"))
	require.Equal(t, "s10_ignore", fx.Status(t, "t-ignored"))

	// Nothing is left to move, and the page says so rather than confirm.
	p = s.post("/requeue", url.Values{"csrf": {s.token()}, "filter": {"status=failed&error=connection+reset"}, "scope": {"all"}})
	require.Contains(t, p.body, "Nothing to requeue")

	p = s.post("/requeue", url.Values{"csrf": {s.token()}, "filter": {"status=succeeded"}, "scope": {"all"}})
	require.Equal(t, http.StatusBadRequest, p.status, "succeeded tasks are not requeued")
}

func TestRequeueFromTaskPageReturnsThere(t *testing.T) {
	t.Parallel()
	fx := seeded(t)
	s := newSite(t, fx, dashboard.Options{})
	p := s.get("/task?id=t-stuck")
	form := formAt(t, p.body, `action="/requeue"`)
	p = s.post("/requeue", form)
	require.Contains(t, p.body, "<b>1</b> task will move")
	p = s.post("/requeue", hiddenFields(t, p.body))
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "/task?id=t-stuck&moved=1&skipped=0", p.header.Get("Location"))
	require.Equal(t, "s00_todo", fx.Status(t, "t-stuck"))
}

func TestReset(t *testing.T) {
	t.Parallel()
	fx := seeded(t)
	s := newSite(t, fx, dashboard.Options{})
	p := s.post("/reset", url.Values{"csrf": {s.token()}, "id": {enc("t-ok")}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "/task?id=t-ok&reset=1", p.header.Get("Location"))
	require.Equal(t, "s00_todo", fx.Status(t, "t-ok"))
	require.Contains(t, s.get("/task?id=t-ok&reset=1").body, "Task reset to s00_todo.")

	p = s.post("/reset", url.Values{"csrf": {s.token()}, "id": {enc("t-running")}})
	require.Equal(t, http.StatusConflict, p.status)
	require.Contains(t, p.body, "Task &#34;t-running&#34; is s03_in_progress and worker worker-7 holds its lease until 2025-01-02 03:41:00Z.")
	require.NotContains(t, p.body, "failed attempts", "a task on its first attempt has failed none")
	require.Equal(t, "s03_in_progress", fx.Status(t, "t-running"))

	p = s.post("/reset", url.Values{"csrf": {s.token()}, "id": {enc("t-nope")}})
	require.Equal(t, http.StatusNotFound, p.status)
}

// TestCrossSiteRequestsAreRefused sends the actions the way another site
// could make a browser send them, and checks nothing changes.
func TestCrossSiteRequestsAreRefused(t *testing.T) {
	t.Parallel()
	fx := seeded(t)
	s := newSite(t, fx, dashboard.Options{})
	token := s.token()
	form := func(tok string) url.Values {
		return url.Values{"csrf": {tok}, "id": {enc("t-ok")}, "filter": {"status=failed"}, "scope": {"all"}, "confirm": {"yes"}}
	}
	for _, tc := range []struct {
		name    string
		form    url.Values
		headers []string
		noJar   bool
	}{
		{"no token", form(""), nil, false},
		{"wrong token", form(strings.Repeat("0", len(token))), nil, false},
		{"no cookie", form(token), nil, true},
		{"cross-site fetch", form(token), []string{"Sec-Fetch-Site", "cross-site"}, false},
		{"same-site fetch", form(token), []string{"Sec-Fetch-Site", "same-site"}, false},
		{"foreign origin", form(token), []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}, false},
	} {
		for _, path := range []string{"/reset", "/requeue"} {
			client := s.client
			if tc.noJar {
				s.client = &http.Client{CheckRedirect: client.CheckRedirect}
			}
			p := s.post(path, tc.form, tc.headers...)
			s.client = client
			require.Equal(t, http.StatusForbidden, p.status, "%s %s: %s", tc.name, path, p.body)
		}
	}
	require.Equal(t, "s09_success", fx.Status(t, "t-ok"))
	require.Equal(t, "s06_failed", fx.Status(t, "t-fail-1"))

	// GET never acts.
	require.Equal(t, http.StatusMethodNotAllowed, s.get("/reset?id=t-ok&csrf="+token).status)
}

func TestHostCheckDefeatsDNSRebinding(t *testing.T) {
	t.Parallel()
	s := newSite(t, seeded(t), dashboard.Options{AllowHosts: []string{"tasks.internal"}})
	for host, want := range map[string]int{
		"attacker.example":      http.StatusMisdirectedRequest,
		"attacker.example:8080": http.StatusMisdirectedRequest,
		"localhost:8080":        http.StatusOK,
		"app.localhost":         http.StatusOK,
		"127.0.0.1:8080":        http.StatusOK,
		"[::1]:8080":            http.StatusOK,
		"10.0.0.7":              http.StatusOK,
		"tasks.internal:443":    http.StatusOK,
		"TASKS.internal.":       http.StatusOK,
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.srv.URL+"/static/style.css", nil)
		require.NoError(t, err)
		req.Host = host
		require.Equal(t, want, s.do(req).status, host)
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	fx := seeded(t)
	s := newSite(t, fx, dashboard.Options{ReadOnly: true})
	for _, path := range []string{"/", "/tasks?status=failed", "/tasks?status=stuck", "/task?id=t-fail-1", "/task?id=t-stuck"} {
		p := s.get(path)
		require.Equal(t, http.StatusOK, p.status, path)
		require.NotContains(t, p.body, `method="post"`, path)
		require.NotContains(t, p.body, `name="csrf"`, path)
		require.Empty(t, p.header.Values("Set-Cookie"), path)
	}
	require.Contains(t, s.get("/").body, `<span class="badge"`)
	for _, path := range []string{"/reset", "/requeue"} {
		p := s.post(path, url.Values{"id": {enc("t-fail-1")}, "filter": {"status=failed"}, "scope": {"all"}, "confirm": {"yes"}})
		require.Equal(t, http.StatusForbidden, p.status)
		require.Contains(t, p.body, "read-only")
	}
	require.Equal(t, "s06_failed", fx.Status(t, "t-fail-1"))
}

func TestStaticAssets(t *testing.T) {
	t.Parallel()
	s := newSite(t, fixture.New(t), dashboard.Options{})
	for path, ctype := range map[string]string{"/static/app.js": "text/javascript", "/static/style.css": "text/css"} {
		p := s.get(path)
		require.Equal(t, http.StatusOK, p.status, path)
		require.Contains(t, p.header.Get("Content-Type"), ctype, path)
		require.Equal(t, "max-age=3600", p.header.Get("Cache-Control"), path)
	}
	require.Equal(t, http.StatusNotFound, s.get("/static/nope.js").status)
	require.Equal(t, http.StatusNotFound, s.get("/nope").status)
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// hiddenFields returns the hidden fields of the page's last form.
func hiddenFields(t *testing.T, body string) url.Values {
	t.Helper()
	i := strings.LastIndex(body, "<form")
	require.GreaterOrEqual(t, i, 0, "no form on the page")
	return fields(body[i:])
}

// formAt returns the hidden fields of the form whose tag contains attr.
func formAt(t *testing.T, body, attr string) url.Values {
	t.Helper()
	i := strings.Index(body, attr)
	require.GreaterOrEqual(t, i, 0, "no form with %s", attr)
	end := strings.Index(body[i:], "</form>")
	return fields(body[i : i+end])
}

func fields(html string) url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(html, -1) {
		if m[2] != "" {
			v.Add(m[1], unescape(m[2]))
		}
	}
	return v
}

var linkRE = regexp.MustCompile(`(?:href|src|action)="([^"]*)"`)

// TestMountedUnderPrefix mounts the dashboard in a service's ServeMux
// under /ops/tasks/ and checks that every link, form, redirect and cookie
// stays under it, so the service's other routes are untouched.
func TestMountedUnderPrefix(t *testing.T) {
	t.Parallel()
	fx := seeded(t)
	h, err := dashboard.New(fx.Tracker, dashboard.Options{
		Prefix: "/ops/tasks/", Now: fx.Clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/ops/tasks/", h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "the service's own 404", http.StatusNotFound)
	})
	s := serve(t, fx, mux)

	// ServeMux sends the prefix without its slash to the overview.
	p := s.get("/ops/tasks")
	require.Equal(t, "/ops/tasks/", p.header.Get("Location"))

	s.base = "/ops/tasks"
	for _, path := range []string{"/", "/tasks?status=failed", "/task?id=t-fail-1", "/tasks?status=all&limit=3"} {
		p := s.get(path)
		require.Equal(t, http.StatusOK, p.status, "%s: %s", path, p.body)
		links := linkRE.FindAllStringSubmatch(p.body, -1)
		require.NotEmpty(t, links)
		for _, l := range links {
			require.True(t, strings.HasPrefix(unescape(l[1]), "/ops/tasks/"), "%s: link %q is outside the prefix", path, l[1])
		}
		require.Contains(t, p.header.Get("Set-Cookie"), "Path=/ops/tasks/", path)
	}
	require.Equal(t, []string{fixture.XSS, "t-fail-2", "t-fail-1"}, listedIDs(t, s.get("/tasks?status=failed").body))
	require.Equal(t, http.StatusOK, s.get("/static/app.js").status)

	// Actions post under the prefix, and redirect back under it.
	form := url.Values{"csrf": {s.token()}, "filter": {"status=failed"}, "scope": {"selected"}, "ids": {enc("t-fail-1")}}
	p = s.post("/requeue", form)
	require.Equal(t, http.StatusOK, p.status, p.body)
	p = s.post("/requeue", hiddenFields(t, p.body))
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "/ops/tasks/tasks?status=failed&moved=1&skipped=0", p.header.Get("Location"))
	p = s.post("/reset", url.Values{"csrf": {s.token()}, "id": {enc("t-ok")}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "/ops/tasks/task?id=t-ok&reset=1", p.header.Get("Location"))
	p = s.get("/search?q=t-ok")
	require.Equal(t, "/ops/tasks/task?id=t-ok", p.header.Get("Location"))

	// The rest of the service is the service's.
	s.base = ""
	p = s.get("/ops/tasksx")
	require.Equal(t, http.StatusNotFound, p.status)
	require.Contains(t, p.body, "the service's own 404")

	_, err = dashboard.New(fx.Tracker, dashboard.Options{Prefix: "ops"})
	require.ErrorContains(t, err, `Options.Prefix "ops" is not a path`)
}

var valueAttrRE = regexp.MustCompile(`value="[^"]*"`)

// TestBidiControlsAreVisible checks that a right-to-left override in a
// task's ID or error is shown as "\u202e" on the pages that show them,
// never as the control itself, which would make "rtl-\u202Egnp.exe" read
// as "rtl-exe.png".
func TestBidiControlsAreVisible(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.SeedHostile(t)
	s := newSite(t, fx, dashboard.Options{})
	for _, path := range []string{
		"/tasks?status=failed",
		"/tasks?status=all&id=rtl",
		"/task?" + url.Values{"id": {fixture.RTL}}.Encode(),
	} {
		p := s.get(path)
		require.Equal(t, http.StatusOK, p.status, "%s: %s", path, p.body)
		// Form values carry the ID as it is, to act on it; they are not
		// shown.
		shown := valueAttrRE.ReplaceAllString(p.body, "")
		require.NotContains(t, shown, "\u202e", path)
		require.Contains(t, shown, `rtl-\u202egnp.exe`, path)
	}
}

// enc encodes a task ID as the dashboard's forms carry it.
func enc(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

// TestIDsRoundTripThroughForms requeues and resets a task whose ID holds a
// newline, with the forms its page gives. A browser sends every line feed
// in a form value as CR LF, so the forms must not carry the ID as it is;
// crlf posts the forms as a browser would.
func TestIDsRoundTripThroughForms(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.SeedHostile(t)
	s := newSite(t, fx, dashboard.Options{})
	crlf := func(v url.Values) url.Values {
		out := url.Values{}
		for k, vs := range v {
			for _, x := range vs {
				out.Add(k, strings.ReplaceAll(x, "\n", "\r\n"))
			}
		}
		return out
	}
	page := "/task?" + url.Values{"id": {fixture.Newline}}.Encode()
	p := s.get(page)
	require.Equal(t, http.StatusOK, p.status, p.body)
	p = s.post("/requeue", crlf(formAt(t, p.body, `/requeue"`)))
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, "<b>1</b> task will move")
	p = s.post("/requeue", crlf(hiddenFields(t, p.body)))
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, page+"&moved=1&skipped=0", p.header.Get("Location"))
	require.Equal(t, "s00_todo", fx.Status(t, fixture.Newline))

	// The list's checkboxes carry it too.
	p = s.get("/tasks?status=failed")
	boxes := regexp.MustCompile(`name="ids" value="([^"]*)"`).FindAllStringSubmatch(p.body, -1)
	require.NotEmpty(t, boxes)
	form := crlf(formAt(t, p.body, `/requeue"`))
	form.Set("scope", "selected")
	for _, b := range boxes {
		form.Add("ids", unescape(b[1]))
	}
	p = s.post("/requeue", form)
	require.Contains(t, p.body, "<b>2</b> tasks will move")

	p = s.get(page)
	p = s.post("/reset", crlf(formAt(t, p.body, `/reset"`)))
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, page+"&reset=1", p.header.Get("Location"))
}

// countingClient counts the reads the dashboard sends to the real client
// it wraps.
type countingClient struct {
	ddbtrack.Client
	reads atomic.Int64
}

func (c *countingClient) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.reads.Add(1)
	return c.Client.Query(ctx, in, opts...)
}

func (c *countingClient) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.reads.Add(1)
	return c.Client.GetItem(ctx, in, opts...)
}

// countedSite is a dashboard whose reads of DynamoDB are counted.
func countedSite(t *testing.T, fx *fixture.Fixture, opts dashboard.Options) (*site, *countingClient) {
	t.Helper()
	client := &countingClient{Client: fx.Client}
	tr, err := ddbtrack.New(client, fx.Config("worker-7"))
	require.NoError(t, err)
	opts.Now = fx.Clock.Now
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := dashboard.New(tr, opts)
	require.NoError(t, err)
	return serve(t, fx, h), client
}

// TestCrossSiteReadsAreRefused sends the requests another site's page can
// make a browser send (images, scripts, fetches, frames and links), and
// checks that none of them reads DynamoDB, while the operator's own
// navigation still works.
func TestCrossSiteReadsAreRefused(t *testing.T) {
	t.Parallel()
	s, client := countedSite(t, seeded(t), dashboard.Options{})
	get := func(path string, headers ...string) page {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.srv.URL+path, nil)
		require.NoError(t, err)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		return s.do(req)
	}
	for _, path := range []string{"/", "/tasks?status=all", "/task?id=t-ok", "/search?q=t-ok"} {
		before := client.reads.Load()
		for _, h := range [][]string{
			{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "image"},
			{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "cors", "Sec-Fetch-Dest", "empty"},
			{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "iframe"},
			{"Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "script"},
		} {
			p := get(path, h...)
			require.Equal(t, http.StatusForbidden, p.status, "%s %v", path, h)
			require.Contains(t, p.body, "came from another site", "%s %v", path, h)
		}
		// A link followed from another site gets the same link to click.
		p := get(path, "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document")
		require.Equal(t, http.StatusForbidden, p.status, path)
		require.Contains(t, p.body, `<a id="continue" href="`+html.EscapeString(path)+`">`, path)
		require.Equal(t, before, client.reads.Load(), "%s: a cross-site request read DynamoDB", path)

		// The operator's own requests are served: typed or bookmarked,
		// from the dashboard's pages, and from tools without the header.
		for _, site := range []string{"none", "same-origin", ""} {
			p := get(path, "Sec-Fetch-Site", site, "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document")
			require.Contains(t, []int{http.StatusOK, http.StatusSeeOther}, p.status, "%s from %q", path, site)
		}
		require.Greater(t, client.reads.Load(), before, path)
	}
	// The style sheet and script read nothing, so any site may load them.
	require.Equal(t, http.StatusOK, get("/static/style.css", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Dest", "style").status)
}

var detailsRE = regexp.MustCompile(`(?s)<details>.*?</details>`)

// TestErrorPagesExplain checks that error pages say what is wrong and what
// to do in an operator's words, with the SDK's own message kept out of
// sight until asked for.
func TestErrorPagesExplain(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	cfg := fx.Config("worker-7")
	cfg.Table = "ddbtrack-no-such-table"
	tr, err := ddbtrack.New(fx.Client, cfg)
	require.NoError(t, err)
	h, err := dashboard.New(tr, dashboard.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	s := serve(t, fx, h)
	for _, path := range []string{"/", "/tasks?status=failed", "/task?id=t-1"} {
		p := s.get(path)
		require.Equal(t, http.StatusBadGateway, p.status, path)
		require.Contains(t, p.body, `<p class="message" id="problem">Table &#34;ddbtrack-no-such-table&#34; does not exist at this endpoint and region.</p>`, path)
		require.Contains(t, p.body, "create it with `ddbtrack create-table`", path)
		require.NotContains(t, detailsRE.ReplaceAllString(p.body, ""), "ResourceNotFoundException", "%s: the SDK's error shows only when asked for", path)
	}
}

var boxRE = regexp.MustCompile(`name="ids" value="([^"]*)"`)

// TestRequeueSelectedInBatches selects every task on pages of 200 and 500
// and requeues them: more IDs than one DynamoDB request takes.
func TestRequeueSelectedInBatches(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.FailMany(t, 320, func(i int) (string, string) { return fmt.Sprintf("b-%03d", i), "timeout" })
	s := newSite(t, fx, dashboard.Options{})
	for _, tc := range []struct {
		limit, want int
	}{{200, 200}, {500, 120}} {
		p := s.get(fmt.Sprintf("/tasks?status=failed&limit=%d", tc.limit))
		form := formAt(t, p.body, `/requeue"`)
		form.Set("scope", "selected")
		for _, b := range boxRE.FindAllStringSubmatch(p.body, -1) {
			form.Add("ids", unescape(b[1]))
		}
		require.Len(t, form["ids"], tc.want)
		p = s.post("/requeue", form)
		require.Equal(t, http.StatusOK, p.status, p.body)
		require.Contains(t, p.body, fmt.Sprintf("<b>%d</b> tasks will move", tc.want))
		p = s.post("/requeue", hiddenFields(t, p.body))
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		require.Contains(t, p.header.Get("Location"), fmt.Sprintf("moved=%d&skipped=0", tc.want))
	}
	counts, err := fx.Tracker.Count(t.Context(), fixture.Pending)
	require.NoError(t, err)
	n := counts.ByStatus[fixture.Pending]
	require.Equal(t, int64(320), n)
}

// TestTaskPagePutsTheErrorFirst checks that a failed task's page shows its
// error and history, with stacks open, before its data, and folds big data
// away so that it does not push the error off the screen.
func TestTaskPagePutsTheErrorFirst(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Panic(t, "t-big", bigData())
	s := newSite(t, fx, dashboard.Options{})
	p := s.get("/task?id=t-big")
	require.Equal(t, http.StatusOK, p.status, p.body)
	history, data := strings.Index(p.body, `>Error history (`), strings.Index(p.body, `>Data</h2>`)
	require.Positive(t, history)
	require.Less(t, history, data, "the error history comes before the data")
	require.Less(t, strings.Index(p.body, `id="last-error"`), history)
	require.Contains(t, p.body, `<details class="stack" open>`)
	require.Regexp(t, `<details class="payload" id="data-details"><summary>\d+ bytes, collapsed: open to read</summary><pre class="json" id="data">`, p.body)

	fx.Fail(t, "t-small", map[string]any{"file": "a.csv"}, "boom", false)
	p = s.get("/task?id=t-small")
	require.Contains(t, p.body, `<pre class="json" id="data">{`, "small data is shown open")
}

// bigData is task data of some 6 KB, 120 lines indented.
func bigData() map[string]any {
	rows := make([]map[string]any, 40)
	for i := range rows {
		rows[i] = map[string]any{"row": i, "value": strings.Repeat("x", 100)}
	}
	return map[string]any{"rows": rows}
}

// fiveCauses returns the ID and error of the ith of many failures spread
// evenly over five causes, each error with its own numbers and addresses.
func fiveCauses(i int) (string, string) {
	msgs := []string{
		"timeout after %[2]ds calling 10.0.3.%[1]d:443",
		"dial tcp 10.1.%[2]d.%[1]d:5432: connect: connection refused",
		"row %[1]d: column \"amount%[2]d\" is text, want numeric",
		"request 3f2504e0-4f89-11d3-9a0c-%012[1]x failed: HTTP %[2]d03",
		"worker %[1]d ran out of memory after %[2]d MiB",
	}
	return fmt.Sprintf("task-%04d", i), fmt.Sprintf(msgs[i%5], i%250, i%7)
}

var groupRE = regexp.MustCompile(`<tr data-group="([0-9a-f]+)">\s*<td class="num"><b class="group-count">(\d+)</b>`)

func TestErrorsView(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Seed(t)
	fx.FailMany(t, 500, fiveCauses)
	s := newSite(t, fx, dashboard.Options{})

	p := s.get("/errors")
	require.Equal(t, http.StatusOK, p.status, p.body)
	groups := groupRE.FindAllStringSubmatch(p.body, -1)
	require.Len(t, groups, 5+3, "five causes, and the seeded failures' three")
	for _, g := range groups[:5] {
		require.Equal(t, "100", g[2])
	}
	require.Contains(t, p.body, "504 tasks read")
	require.Contains(t, p.body, `title="timeout after &lt;n&gt;s calling &lt;ip&gt;">timeout after &lt;n&gt;s calling &lt;ip&gt;</span>`)
	require.Contains(t, p.body, `<a href="/errors" class="active">errors</a>`)
	require.Contains(t, p.body, `href="/task?id=task-0`, "each group links an example task")

	// Requeue a whole group, after a dry run that counts it.
	form := formAt(t, p.body, `data-group="`+groups[0][1]+`"`)
	p = s.post("/errors/requeue", form)
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, "<b>100</b> tasks will move to <b>s00_todo</b>")
	p = s.post("/errors/requeue", hiddenFields(t, p.body))
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "/errors?status=failed%2Cignored&moved=100&skipped=0", p.header.Get("Location"))
	p = s.get(p.header.Get("Location"))
	require.Contains(t, p.body, "Requeued 100 tasks to s00_todo.")
	require.Len(t, groupRE.FindAllStringSubmatch(p.body, -1), 7)

	p = s.get("/errors?status=succeeded")
	require.Contains(t, p.body, "No errors.")
	require.NotContains(t, p.body, "requeue-group")
}

// otherNames has the fixture's values under other names, as the enum of
// another job would.
type otherNames int

func (s otherNames) String() string {
	return map[otherNames]string{0: "todo", 3: "doing", 6: "broken", 9: "done", 10: "skipped"}[s]
}

// TestCheckFindsAWrongTrackerOrJob gives the dashboard a tracker whose enum
// names the statuses otherwise than the stored tasks, one whose job has no
// tasks, and one whose table does not exist, and checks that each is
// reported: by Check, and on the pages.
func TestCheckFindsAWrongTrackerOrJob(t *testing.T) {
	t.Parallel()
	fx := seeded(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := ddbtrack.Config[otherNames]{Table: fx.Table, Job: fixture.Job, Pending: 0, Running: 3, Failed: 6, Succeeded: 9, Ignored: 10}
	tr, err := ddbtrack.New(fx.Client, cfg)
	require.NoError(t, err)
	h, err := dashboard.New(tr, dashboard.Options{Logger: quiet, Now: fx.Clock.Now})
	require.NoError(t, err)
	warnings, err := h.Check(t.Context())
	require.NoError(t, err)
	require.Len(t, warnings, 5)
	require.Equal(t, `Tasks with status 0 are stored as "s00_todo" (task "t-pending"), but the configured statuses call 0 "todo" (the pending role). `+
		`The dashboard's tracker does not describe this job's statuses, so counts and lists file tasks under the wrong names: give it the job's own status enum (for ddbtrack serve, fix --statuses).`, warnings[0])
	p := serve(t, fx, h).get("/tasks?status=failed")
	require.Equal(t, 5, strings.Count(p.body, `<p class="warning" role="alert">Tasks with status`), "every page shows the warnings")

	// A job with no tasks, such as a mistyped name, says so.
	cfg.Job = "tset-job"
	tr, err = ddbtrack.New(fx.Client, cfg)
	require.NoError(t, err)
	h, err = dashboard.New(tr, dashboard.Options{Logger: quiet, Now: fx.Clock.Now})
	require.NoError(t, err)
	warnings, err = h.Check(t.Context())
	require.NoError(t, err)
	require.Equal(t, []string{`No tasks in job "tset-job" of table "` + fx.Table + `"; the table holds the jobs "nightly-import".`}, warnings)
	p = serve(t, fx, h).get("/")
	require.Contains(t, p.body, `<p class="warning" id="no-tasks">No tasks in job &#34;tset-job&#34;`)

	// A table that does not exist fails the check, with the fix.
	cfg.Table = "ddbtrack-no-such-table"
	tr, err = ddbtrack.New(fx.Client, cfg)
	require.NoError(t, err)
	h, err = dashboard.New(tr, dashboard.Options{Logger: quiet})
	require.NoError(t, err)
	_, err = h.Check(t.Context())
	require.Error(t, err)
	require.Contains(t, ops.Explain(err).String(), "create it with `ddbtrack create-table`")
}

// TestSlimIndex: on a slim status index (Config.SlimIndex) every page shows
// what it shows on a full one: lists, filters and error groups use only
// what a slim index holds, and a task's page reads the whole task.
func TestSlimIndex(t *testing.T) {
	t.Parallel()
	slim := fixture.NewSlim(t)
	slim.Seed(t)
	fx := seeded(t)
	full, thin := newSite(t, fx, dashboard.Options{}), newSite(t, slim, dashboard.Options{})
	// Forms carry a random token per site, and the tables' names differ.
	same := func(p page, table string) string {
		return strings.ReplaceAll(csrfRE.ReplaceAllString(p.body, "csrf"), table, "TABLE")
	}
	for _, path := range []string{
		"/",
		"/tasks?status=failed",
		"/tasks?status=all&id=fail",
		"/tasks?status=failed,ignored&error=connection+reset",
		"/tasks?status=stuck",
		"/errors",
		"/task?id=t-ok",
		"/task?id=t-fail-2",
	} {
		want, got := full.get(path), thin.get(path)
		require.Equal(t, http.StatusOK, got.status, "%s on a slim index: %s", path, got.body)
		require.Equal(t, same(want, fx.Table), same(got, slim.Table), path)
	}
}
