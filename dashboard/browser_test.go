package dashboard_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard"
	fixture "github.com/ddbtrack/ddbtrack/internal/dev/opsfixture"
)

// envChromium names the browser binary when it is not on PATH.
const envChromium = "DDBTRACK_CHROMIUM"

// findChromium returns the browser to test with. A missing browser fails
// the test rather than skipping it: a dashboard whose browser test quietly
// stopped running looks green while nobody checks it.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envChromium); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("the dashboard's browser test needs headless Chromium, and none is on PATH: run `make browser-deps` "+
		"(installs Debian's chromium package), or set %s to a Chromium or Chrome binary", envChromium)
	return ""
}

// browser starts a headless Chromium with a fresh profile and returns a
// context for one tab in it.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(findChromium(t)),
		chromedp.NoSandbox, // Containers and CI often run as root, where the sandbox refuses to start.
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(cancelTab)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](`1`)); err != nil {
		t.Fatalf("start Chromium: %v; check that it runs headless here, e.g. `chromium --headless --no-sandbox --dump-dom about:blank`", err)
	}
	return ctx
}

// tab is one browser tab on a dashboard, with the steps tests take.
type tab struct {
	t   *testing.T
	ctx context.Context
	s   *site
}

func newTab(t *testing.T, s *site) *tab {
	t.Helper()
	return &tab{t: t, ctx: browser(t), s: s}
}

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, steps...))
}

// open loads a dashboard path.
func (b *tab) open(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.s.srv.URL + b.s.base + path))
}

// follow clicks something that loads a page and waits for the load.
func (b *tab) follow(sel string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.WaitEvent(cdppage.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel))))
	require.NoError(b.t, err, "click %s", sel)
}

// stepTimeout bounds a step that waits for an element, so that a missing
// one fails the test in seconds rather than at the browser's deadline.
const stepTimeout = 20 * time.Second

func (b *tab) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	require.NoError(b.t, err, "text of %s", sel)
	return strings.TrimSpace(v)
}

// eval runs a script in the page and returns its value.
func eval[T any](b *tab, script string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](script))
	require.NoError(b.t, err, "evaluate %s", script)
	return v
}

func (b *tab) location() string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Location())
	require.NoError(b.t, err)
	return strings.TrimPrefix(v, b.s.srv.URL)
}

func (b *tab) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	saveScreenshot(b.t, name, png)
}

// acceptDialogs says yes to every confirm() the page asks.
func (b *tab) acceptDialogs() {
	dialogs := chromedp.Events(b.ctx, cdppage.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(b.ctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
}

// TestBrowser drives the dashboard in a real browser: the overview, a
// failed task, a requeue through the confirmation, a requeue of selected
// tasks, a reset, and tasks whose ID and error are HTML. It saves the
// screenshots the README shows.
func TestBrowser(t *testing.T) {
	fx := fixture.New(t)
	fx.SeedHistory(t, 60)
	fx.Seed(t)
	// The table's name is random; the screenshots should not change with it.
	s := newSite(t, fx, dashboard.Options{Table: "ddbtrack-demo"})
	b := newTab(t, s)

	// The overview counts each status and draws the chart.
	b.do(chromedp.Navigate(s.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("svg.chart")))
	require.Equal(t, "11", b.text("a.card.s-failed .count"))
	require.Equal(t, "1", b.text("a.card.s-stuck .count"))
	require.Equal(t, "counted just now", b.text("#counted"), "the counts show their age")
	b.screenshot("overview.png")

	// From the failed card to the list, and on to a failed task.
	b.follow("a.card.s-failed")
	require.Equal(t, "/tasks?status=failed", b.location())
	b.follow(`a[href="/task?id=t-fail-2"]`)
	require.Equal(t, "s06_failed", b.text("#task-status"))
	require.Equal(t, "connection reset by peer", b.text("#last-error"))
	b.screenshot("task.png")

	// Requeue it: the confirmation says how many will move, and the task
	// page then shows the new status, which is what the table holds.
	b.follow("#requeue")
	require.Contains(t, b.text("#confirm-count"), "1 task will move to s00_todo")
	require.Equal(t, "s06_failed", fx.Status(t, "t-fail-2"), "nothing moves before the confirmation")
	b.follow("#confirm")
	require.Equal(t, "/task?id=t-fail-2&moved=1&skipped=0", b.location())
	require.Equal(t, "s00_todo", b.text("#task-status"))
	require.Contains(t, b.text(".flash"), "Requeued 1 task to s00_todo.")
	require.Equal(t, "s00_todo", fx.Status(t, "t-fail-2"))

	// Select all on a list, requeue the selection.
	b.do(chromedp.Navigate(s.srv.URL+"/tasks?status=ignored"), chromedp.Click(chromedp.ID("select-all")))
	b.follow("#requeue-selected")
	require.Contains(t, b.text("#confirm-count"), "1 task will move to s00_todo")
	require.Contains(t, b.text("ul.selected"), "t-ignored")
	b.follow("#confirm")
	require.Contains(t, b.text(".flash"), "Requeued 1 task to s00_todo.")
	require.Equal(t, "s00_todo", fx.Status(t, "t-ignored"))

	// Reset asks the browser to confirm first.
	b.acceptDialogs()
	b.open("/task?id=t-ok")
	b.follow("#reset")
	require.Equal(t, "Task reset to s00_todo.", b.text(".flash"))
	require.Equal(t, "s00_todo", fx.Status(t, "t-ok"))

	// A task whose ID, data and error are HTML shows them as text, and
	// adds no element to the page.
	for _, path := range []string{"/tasks?status=failed", "/task?id=" + url.QueryEscape(fixture.XSS)} {
		b.open(path)
		require.True(t, eval[bool](b, `window.__xss === undefined`), "%s: the task's text ran as script", path)
		require.Equal(t, 1, eval[int](b, `document.scripts.length`), "%s: only the dashboard's own script element", path)
		require.Zero(t, eval[int](b, `document.images.length`), "%s: the task's text added an element", path)
	}
	require.Equal(t, fixture.XSS, b.text("h1 .id"))
	require.Equal(t, "bad input "+fixture.XSS, b.text("#last-error"))
	require.Contains(t, b.text("#data"), `<script>window.__xss=1</script>`)
}

// TestBrowserScheduleAndCancel lists the tasks that wait for a time,
// cancels one through its confirmation, which will not go without a
// reason, and makes a backing-off one due now. It saves the screenshot of
// the scheduled list that the README shows.
func TestBrowserScheduleAndCancel(t *testing.T) {
	fx := fixture.New(t)
	fx.Seed(t)
	fx.SeedSchedule(t)
	s := newSite(t, fx, dashboard.Options{Table: "ddbtrack-demo"})
	b := newTab(t, s)

	b.open("/")
	b.follow(`nav a[href="/tasks?status=scheduled"]`)
	require.Equal(t, "retry in 3m 20s", b.text("table.tasks tbody tr:nth-child(1) td.due"))
	require.Equal(t, "scheduled for 2025-01-04 06:35:00Z (in 2d 3h)", b.text("table.tasks tbody tr:nth-child(2) td.due"))
	b.screenshot("scheduled.png")

	// Cancel the scheduled task from its page.
	b.follow(`a[href="/task?id=t-later"]`)
	require.Equal(t, "scheduled for 2025-01-04 06:35:00Z (in 2d 3h)", b.text("#task-due"))
	b.follow("#cancel")
	require.Contains(t, b.text("#confirm-count"), "1 task will stop for good and end s10_ignore")
	// The browser does not send the confirmation without a reason.
	b.do(chromedp.Click(chromedp.CSS("#confirm")))
	require.True(t, eval[bool](b, `document.querySelector("#reason").validity.valueMissing`))
	require.Equal(t, "/cancel", b.location())
	require.Equal(t, "s00_todo", fx.Status(t, "t-later"))
	b.do(chromedp.SendKeys(chromedp.CSS("#reason"), "customer closed the account"))
	b.follow("#confirm")
	require.Equal(t, "/task?id=t-later&cancelled=1&left=0&running=0", b.location())
	require.Equal(t, "Cancelled 1 task: it ends s10_ignore.", b.text(".flash"))
	require.Equal(t, "cancelled at 2025-01-02 03:35:00Z: customer closed the account", b.text("#task-cancel"))
	require.Equal(t, "s10_ignore", fx.Status(t, "t-later"))

	// Make the backing-off task due now, after the browser asks.
	b.acceptDialogs()
	b.open("/task?id=t-retry")
	b.follow("#due-now")
	require.Equal(t, "Task made due now: the next worker that looks for work starts it.", b.text(".flash"))
	require.Equal(t, "s00_todo", b.text("#task-status"))
	require.Equal(t, "now", b.text("#task-due"))
	require.Equal(t, "s00_todo", fx.Status(t, "t-retry"))
}

// TestBrowserHostileText checks, in a real browser, how the dashboard
// shows task IDs and errors that hold more than plain text.
func TestBrowserHostileText(t *testing.T) {
	fx := fixture.New(t)
	fx.Seed(t)
	fx.SeedHostile(t)
	s := newSite(t, fx, dashboard.Options{})
	b := newTab(t, s)

	// S2: a right-to-left override is shown as its escape, in the list
	// and on the task's page, so that "rtl-\u202Egnp.exe" cannot pass
	// for "rtl-exe.png"; the link still opens the task.
	b.open("/tasks?status=failed")
	require.False(t, eval[bool](b, `document.body.innerText.includes("\u202e")`), "a bidirectional control reached the page's text")
	require.Contains(t, eval[string](b, `document.body.innerText`), `rtl-\u202egnp.exe`)
	b.follow(`a[href="/task?id=` + url.QueryEscape(fixture.RTL) + `"]`)
	require.Equal(t, `rtl-\u202egnp.exe`, b.text("h1 .id"))
	require.Equal(t, `cannot open rtl-\u202egnp.exe: permission denied`, b.text("#last-error"))
	require.False(t, eval[bool](b, `document.body.innerText.includes("\u202e")`), "a bidirectional control reached the task's page")

	// S3: a task whose ID holds a newline can be requeued and reset from
	// its page, although the browser sends every line feed in a form as
	// CR LF.
	b.open("/tasks?status=failed")
	b.follow(`a[href="/task?id=two%0Alines"]`)
	require.Equal(t, `two\nlines`, b.text("h1 .id"))
	b.follow("#requeue")
	require.Contains(t, b.text("#confirm-count"), "1 task will move to s00_todo")
	b.follow("#confirm")
	require.Equal(t, "/task?id=two%0Alines&moved=1&skipped=0", b.location())
	require.Equal(t, "s00_todo", fx.Status(t, fixture.Newline))
	b.acceptDialogs()
	b.follow("#reset")
	require.Equal(t, "Task reset to s00_todo.", b.text(".flash"))
}

// TestBrowserCrossSiteReads opens a page of another site that points an
// image, a script, a frame and a fetch at the dashboard, and a link to it.
// None of them may make the dashboard read DynamoDB; the link leads to a
// page that offers it again, and from there the list opens.
func TestBrowserCrossSiteReads(t *testing.T) {
	fx := fixture.New(t)
	fx.Seed(t)
	s, client := countedSite(t, fx, dashboard.Options{})
	target := s.srv.URL + "/tasks?status=all"
	// Chromium treats localhost and 127.0.0.1 as two sites.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>elsewhere</title>
<img src="%[1]s"><script src="%[1]s"></script><iframe src="%[1]s"></iframe>
<script>fetch("%[1]s", {mode: "no-cors", credentials: "include"}).finally(() => { document.title = "fetched"; });</script>
<a id="go" href="%[1]s">tasks</a>`, target)
	}))
	t.Cleanup(evil.Close)
	elsewhere := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)

	b := newTab(t, s)
	before := client.reads.Load()
	b.do(chromedp.Navigate(elsewhere + "/"))
	require.Eventually(t, func() bool { return eval[string](b, `document.title`) == "fetched" }, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, before, client.reads.Load(), "another site's page made the dashboard read DynamoDB")

	b.follow("#go")
	require.Equal(t, "Opened from another site", b.text("h1"))
	require.Equal(t, before, client.reads.Load(), "a link from another site read DynamoDB before the operator confirmed")
	b.follow("#continue")
	require.Equal(t, "/tasks?status=all", b.location())
	require.Contains(t, b.text("h1"), "Tasks:")
	require.Greater(t, client.reads.Load(), before)
}

// TestBrowserErrorPageAndWarnings opens the dashboard of a table that does not exist:
// the page says so and what to do, and keeps the SDK's message folded.
func TestBrowserErrorPageAndWarnings(t *testing.T) {
	fx := fixture.New(t)
	cfg := fx.Config("worker-7")
	cfg.Table = "ddbtrack-no-such-table"
	tr, err := ddbtrack.New(fx.Client, cfg)
	require.NoError(t, err)
	h, err := dashboard.New(tr, dashboard.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	b := newTab(t, serve(t, fx, h))
	b.open("/")
	require.Equal(t, `Table "ddbtrack-no-such-table" does not exist at this endpoint and region.`, b.text("#problem"))
	require.Contains(t, b.text("#fix"), "ddbtrack create-table")
	require.NotContains(t, eval[string](b, `document.body.innerText`), "ResourceNotFoundException", "the SDK's error is folded away")

	// A dashboard whose tracker names the statuses otherwise than the
	// stored tasks says so at the top of every page.
	fx.Seed(t)
	other, err := ddbtrack.New(fx.Client, ddbtrack.Config[otherNames]{Table: fx.Table, Job: fixture.Job, Pending: 0, Running: 3, Failed: 6, Succeeded: 9, Ignored: 10})
	require.NoError(t, err)
	h, err = dashboard.New(other, dashboard.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: fx.Clock.Now})
	require.NoError(t, err)
	b = newTab(t, serve(t, fx, h))
	b.open("/")
	require.Equal(t, 5, eval[int](b, `document.querySelectorAll("main p.warning[role=alert]").length`))
	require.Contains(t, b.text("main p.warning[role=alert]"), `Tasks with status 0 are stored as "s00_todo"`)
}

// TestBrowserSelectAllInBatches ticks "select all" on pages of 200 and 500
// tasks and requeues the selection, which takes more IDs than one DynamoDB
// request.
func TestBrowserSelectAllInBatches(t *testing.T) {
	fx := fixture.New(t)
	fx.FailMany(t, 320, func(i int) (string, string) { return fmt.Sprintf("b-%03d", i), "timeout" })
	s := newSite(t, fx, dashboard.Options{})
	b := newTab(t, s)
	for _, tc := range []struct{ limit, want int }{{200, 200}, {500, 120}} {
		b.open(fmt.Sprintf("/tasks?status=failed&limit=%d", tc.limit))
		b.do(chromedp.Click(chromedp.ID("select-all")))
		b.follow("#requeue-selected")
		require.Contains(t, b.text("#confirm-count"), fmt.Sprintf("%d tasks will move to s00_todo", tc.want))
		b.follow("#confirm")
		require.Contains(t, b.text(".flash"), fmt.Sprintf("Requeued %d tasks to s00_todo.", tc.want))
	}
	counts, err := fx.Tracker.Count(t.Context(), fixture.Pending)
	require.NoError(t, err)
	n := counts.ByStatus[fixture.Pending]
	require.Equal(t, int64(320), n)
}

// TestBrowserTaskPageLayout opens a failed task with big data and a stack:
// the error history and the open stack are on the first screen, and the
// data is folded below them.
func TestBrowserTaskPageLayout(t *testing.T) {
	fx := fixture.New(t)
	fx.Panic(t, "t-big", bigData())
	b := newTab(t, newSite(t, fx, dashboard.Options{}))
	b.open("/task?id=t-big")
	heading := func(text string) float64 {
		return eval[float64](b, `[...document.querySelectorAll("h2")].find(h => h.textContent.startsWith("`+text+`")).getBoundingClientRect().top`)
	}
	require.Less(t, heading("Error history"), heading("Data"))
	require.Less(t, eval[float64](b, `document.querySelector("pre.stack").getBoundingClientRect().top`), 900.0, "the stack starts on the first screen")
	require.Positive(t, eval[float64](b, `document.querySelector("pre.stack").getBoundingClientRect().height`), "the stack is open")
	require.False(t, eval[bool](b, `document.querySelector("#data-details").open`), "big data is folded")
	require.False(t, eval[bool](b, `document.querySelector("#data").checkVisibility()`), "big data is out of sight")
}

// TestBrowserLongIDs lists a task whose ID has 1,000 characters and no
// space: the error column keeps a readable width on every row.
func TestBrowserLongIDs(t *testing.T) {
	fx := fixture.New(t)
	fx.Seed(t)
	fx.SeedHostile(t)
	b := newTab(t, newSite(t, fx, dashboard.Options{}))
	b.open("/tasks?status=failed")
	width := eval[float64](b, `[...document.querySelectorAll("table.tasks thead th")].at(-1).getBoundingClientRect().width`)
	require.GreaterOrEqual(t, width, 300.0, "the error column is squeezed")
	idWidth := eval[float64](b, `document.querySelector("table.tasks thead th:nth-child(2)").getBoundingClientRect().width`)
	require.LessOrEqual(t, idWidth, 400.0, "the ID column takes the page")
	require.LessOrEqual(t, eval[float64](b, `document.querySelector("table.tasks").getBoundingClientRect().width`),
		eval[float64](b, `document.querySelector("main").getBoundingClientRect().width`), "the table is wider than the page")
}

// TestBrowserErrorsView loads 2,000 failures with five causes: the errors
// view shows the five causes on one screen, and requeues one whole, in
// batches, after counting it. It saves the screenshot the README shows.
func TestBrowserErrorsView(t *testing.T) {
	fx := fixture.New(t)
	fx.FailMany(t, 2000, fiveCauses)
	s := newSite(t, fx, dashboard.Options{Table: "ddbtrack-demo"})
	b := newTab(t, s)
	b.open("/")
	b.follow(`nav a[href="/errors"]`)
	require.Equal(t, 5, eval[int](b, `document.querySelectorAll("table.groups tbody tr").length`))
	require.Equal(t, "400", b.text("table.groups tbody tr:first-child .group-count"))
	require.Less(t, eval[float64](b, `document.querySelector("table.groups").getBoundingClientRect().bottom`), 900.0,
		"the causes do not fit on one screen")
	b.screenshot("errors.png")

	b.follow("table.groups tbody tr:first-child button.requeue-group")
	require.Contains(t, b.text("#confirm-count"), "400 tasks will move to s00_todo")
	b.follow("#confirm")
	require.Contains(t, b.text(".flash"), "Requeued 400 tasks to s00_todo.")
	require.Equal(t, 4, eval[int](b, `document.querySelectorAll("table.groups tbody tr").length`))
	counts, err := fx.Tracker.Count(t.Context(), fixture.Pending)
	require.NoError(t, err)
	n := counts.ByStatus[fixture.Pending]
	require.Equal(t, int64(400), n)
}

// saveScreenshot writes a screenshot to docs/screenshots at the top of the
// repository, where the README links to it. The pages show fixed data at a
// fixed time, so the files change only when the dashboard's look does.
func saveScreenshot(t *testing.T, name string, png []byte) {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "docs", "screenshots")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, name)
	if old, err := os.ReadFile(path); err == nil && string(old) == string(png) {
		return
	}
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("wrote %s", path)
}

// repoRoot finds the library's module root above the working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			root := sc.Scan() && sc.Text() == "module github.com/ddbtrack/ddbtrack"
			f.Close()
			if root {
				return dir
			}
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "the ddbtrack repository root is not above the working directory")
		dir = parent
	}
}
