package dashboard_test

import (
	"bufio"
	"context"
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
	ctx := browser(t)

	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}
	// follow clicks something that loads a page and waits for the load.
	follow := func(sel string) {
		t.Helper()
		_, err := chromedp.Run(ctx, chromedp.WaitEvent(cdppage.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel))))
		require.NoError(t, err, "click %s", sel)
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
		require.NoError(t, err, "text of %s", sel)
		return strings.TrimSpace(v)
	}
	location := func() string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Location())
		require.NoError(t, err)
		return strings.TrimPrefix(v, s.srv.URL)
	}
	screenshot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		saveScreenshot(t, name, png)
	}

	// The overview counts each status and draws the chart.
	do(chromedp.Navigate(s.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("svg.chart")))
	require.Equal(t, "11", text("a.card.s-failed .count"))
	require.Equal(t, "1", text("a.card.s-stuck .count"))
	screenshot("overview.png")

	// From the failed card to the list, and on to a failed task.
	follow("a.card.s-failed")
	require.Equal(t, "/tasks?status=failed", location())
	follow(`a[href="/task?id=t-fail-2"]`)
	require.Equal(t, "s06_failed", text("#task-status"))
	require.Equal(t, "connection reset by peer", text("#last-error"))
	screenshot("task.png")

	// Requeue it: the confirmation says how many will move, and the task
	// page then shows the new status, which is what the table holds.
	follow("#requeue")
	require.Contains(t, text("#confirm-count"), "1 task will move to s00_todo")
	require.Equal(t, "s06_failed", fx.Status(t, "t-fail-2"), "nothing moves before the confirmation")
	follow("#confirm")
	require.Equal(t, "/task?id=t-fail-2&moved=1&skipped=0", location())
	require.Equal(t, "s00_todo", text("#task-status"))
	require.Contains(t, text(".flash"), "Requeued 1 task to s00_todo.")
	require.Equal(t, "s00_todo", fx.Status(t, "t-fail-2"))

	// Select all on a list, requeue the selection.
	do(chromedp.Navigate(s.srv.URL+"/tasks?status=ignored"), chromedp.Click(chromedp.ID("select-all")))
	follow("#requeue-selected")
	require.Contains(t, text("#confirm-count"), "1 task will move to s00_todo")
	require.Contains(t, text("ul.selected"), "t-ignored")
	follow("#confirm")
	require.Contains(t, text(".flash"), "Requeued 1 task to s00_todo.")
	require.Equal(t, "s00_todo", fx.Status(t, "t-ignored"))

	// Reset asks the browser to confirm first.
	dialogs := chromedp.Events(ctx, cdppage.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	do(chromedp.Navigate(s.srv.URL + "/task?id=t-ok"))
	follow("#reset")
	require.Equal(t, "Task reset to s00_todo.", text(".flash"))
	require.Equal(t, "s00_todo", fx.Status(t, "t-ok"))

	// A task whose ID, data and error are HTML shows them as text, and
	// adds no element to the page.
	for _, path := range []string{"/tasks?status=failed", "/task?id=" + url.QueryEscape(fixture.XSS)} {
		do(chromedp.Navigate(s.srv.URL + path))
		xss, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__xss === undefined`))
		require.NoError(t, err)
		require.True(t, xss, "%s: the task's text ran as script", path)
		scripts, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.scripts.length`))
		require.NoError(t, err)
		require.Equal(t, 1, scripts, "%s: only the dashboard's own script element", path)
		imgs, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.images.length`))
		require.NoError(t, err)
		require.Zero(t, imgs, "%s: the task's text added an element", path)
	}
	require.Equal(t, fixture.XSS, text("h1 .id"))
	require.Equal(t, "bad input "+fixture.XSS, text("#last-error"))
	require.Contains(t, text("#data"), `<script>window.__xss=1</script>`)
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
