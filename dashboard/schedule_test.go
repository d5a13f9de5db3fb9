package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack/dashboard"
	fixture "github.com/ddbtrack/ddbtrack/internal/dev/opsfixture"
)

// scheduledSite is a dashboard on the standard tasks and those that wait
// for a time or were cancelled (fixture.SeedSchedule), with a clock of its
// own, so that a test can move it without moving the fixture's.
func scheduledSite(t *testing.T) (*site, *fixture.Fixture, *fixture.Clock) {
	t.Helper()
	fx := fixture.New(t)
	fx.Seed(t)
	fx.SeedSchedule(t)
	clock := fixture.NewClock(fixture.Now)
	return newSite(t, fx, dashboard.Options{Now: clock.Now}), fx, clock
}

func TestScheduledList(t *testing.T) {
	t.Parallel()
	s, _, clock := scheduledSite(t)

	p := s.get("/tasks?status=scheduled")
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Equal(t, []string{"t-retry", "t-later"}, listedIDs(t, p.body), "the soonest due first")
	require.Contains(t, p.body, "<h1>Tasks: s00_todo or s06_failed, not due yet</h1>")
	require.Contains(t, p.body, `<td class="due">retry in 3m 20s</td>`)
	require.Contains(t, p.body, `<td class="due">scheduled for 2025-01-04 06:35:00Z (in 2d 3h)</td>`)
	require.Contains(t, p.body, `<a href="/tasks?status=scheduled" class="active">scheduled</a>`)
	require.Contains(t, p.body, `id="cancel-selected" formaction="/cancel"`)
	require.NotContains(t, p.body, `id="requeue-all"`, "pending tasks are not requeued")

	// A list of failures shows the due column once one is backing off,
	// and a list of finished tasks says when they were cancelled.
	p = s.get("/tasks?status=failed")
	require.Contains(t, p.body, `<td class="due">due now</td>`)
	require.Contains(t, p.body, `id="requeue-all"`)
	require.Contains(t, p.body, `id="cancel-selected"`)
	p = s.get("/tasks?status=ignored")
	require.Contains(t, p.body, `<td class="due">cancelled at 2025-01-02 03:35:00Z</td>`)
	require.NotContains(t, p.body, `id="cancel-selected"`, "ignored tasks have finished")
	require.NotContains(t, s.get("/tasks?status=succeeded").body, "<th>Due</th>", "nothing waits or was cancelled")

	// Bounds that end before now select nothing rather than fail.
	p = s.get("/tasks?status=scheduled&until=1h")
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Empty(t, listedIDs(t, p.body))

	p = s.get("/tasks?status=succeeded,scheduled")
	require.Equal(t, http.StatusBadRequest, p.status, "scheduled is a list of its own")

	// Once the retry is due, the task leaves the list.
	clock.Advance(fixture.RetryIn)
	require.Equal(t, []string{"t-later"}, listedIDs(t, s.get("/tasks?status=scheduled").body))
}

func TestTaskPageShowsDueAndCancel(t *testing.T) {
	t.Parallel()
	s, _, _ := scheduledSite(t)
	for _, tc := range []struct {
		id            string
		want, without []string
	}{
		{"t-retry", []string{`<dd id="task-due">retry in 3m 20s</dd>`, `id="due-now"`, `id="cancel"`}, []string{`id="task-cancel"`}},
		{"t-later", []string{`<dd id="task-due">scheduled for 2025-01-04 06:35:00Z (in 2d 3h)</dd>`, `id="due-now"`, `id="cancel"`}, nil},
		{"t-pending", []string{`<dd id="task-due">now</dd>`, `id="cancel"`}, []string{`id="due-now"`}},
		{"t-cancelled", []string{`<dd id="task-cancel">cancelled at 2025-01-02 03:35:00Z: superseded by the 2025-01-03 import</dd>`},
			[]string{`id="cancel"`, `id="due-now"`, `id="task-due"`}},
		{"t-cancelling", []string{`<dd id="task-cancel">cancel requested at 2025-01-02 03:33:00Z (2m ago): superseded by the 2025-01-03 import <small>(its worker stops it at the next renewal of the lease)</small></dd>`},
			[]string{`id="cancel"`, `id="task-due"`}},
		{"t-running", []string{`id="cancel"`}, []string{`id="due-now"`, `id="task-due"`}},
		{"t-ok", nil, []string{`id="cancel"`, `id="due-now"`, `id="task-due"`}},
	} {
		p := s.get("/task?id=" + tc.id)
		require.Equal(t, http.StatusOK, p.status, p.body)
		for _, w := range tc.want {
			require.Contains(t, p.body, w, tc.id)
		}
		for _, w := range tc.without {
			require.NotContains(t, p.body, w, tc.id)
		}
	}
}

func TestCancelFromTaskPage(t *testing.T) {
	t.Parallel()
	s, fx, _ := scheduledSite(t)

	// The task page's button leads to a confirmation that names the task
	// and asks for a reason; nothing changes before it.
	form := formAt(t, s.get("/task?id=t-later").body, `action="/cancel"`)
	p := s.post("/cancel", form)
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, `<p id="confirm-count"><b>1</b> task will stop for good and end <b>s10_ignore</b>, with the reason you give.</p>`)
	require.Contains(t, p.body, `<td>scheduled for 2025-01-04 06:35:00Z (in 2d 3h)</td>`)
	require.Contains(t, p.body, `<input type="text" name="reason" id="reason" required`)
	require.Equal(t, "s00_todo", fx.Status(t, "t-later"))

	// The reason is required.
	confirm := hiddenFields(t, p.body)
	require.Equal(t, []string{"yes"}, confirm["confirm"])
	for _, reason := range []string{"", "   "} {
		confirm.Set("reason", reason)
		p = s.post("/cancel", confirm)
		require.Equal(t, http.StatusBadRequest, p.status, p.body)
		require.Contains(t, p.body, "Give a reason for the cancel")
	}
	require.Equal(t, "s00_todo", fx.Status(t, "t-later"))

	confirm.Set("reason", "customer closed the account")
	p = s.post("/cancel", confirm)
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "/task?id=t-later&cancelled=1&left=0&running=0", p.header.Get("Location"))
	later := getTask(t, fx, "t-later")
	require.Equal(t, fixture.Ignored, later.Status)
	require.Equal(t, "customer closed the account", later.CancelReason)
	require.True(t, fixture.Now.Equal(later.CancelledAt), "dated by the dashboard's clock")
	p = s.get(p.header.Get("Location"))
	require.Contains(t, p.body, "Cancelled 1 task: it ends s10_ignore.")
	require.Contains(t, p.body, `<dd id="task-cancel">cancelled at 2025-01-02 03:35:00Z: customer closed the account</dd>`)
}

func TestCancelSelected(t *testing.T) {
	t.Parallel()
	s, fx, _ := scheduledSite(t)
	token := s.token()

	// From the running list: a running task is asked to stop; a task that
	// is not in the list's status, and one that does not exist, are named
	// with the reason.
	p := s.post("/cancel", url.Values{"csrf": {token}, "filter": {"status=running"}, "scope": {"selected"},
		"ids": {enc("t-running"), enc("t-later"), enc("t-nope")}})
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, `<b>1</b> task will stop for good and end <b>s10_ignore</b>, with the reason you give. <b>1</b> is running: its worker stops it at the next renewal of the lease.`)
	require.Contains(t, p.body, `<li><span class="id">t-later</span>: task &#34;t-later&#34; is s00_todo, not s03_in_progress:`)
	require.Contains(t, p.body, `<li><span class="id">t-nope</span>: task &#34;t-nope&#34; not found`)
	confirm := hiddenFields(t, p.body)
	require.Equal(t, []string{enc("t-running")}, confirm["ids"], "the confirmation cancels only what it listed")
	confirm.Set("reason", "duplicate")
	p = s.post("/cancel", confirm)
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "/tasks?status=running&cancelled=1&left=0&running=1", p.header.Get("Location"))
	require.Contains(t, s.get(p.header.Get("Location")).body, "Cancelled 1 task: it ends s10_ignore. 1 was running: its worker stops it at the next renewal of the lease.")
	running := getTask(t, fx, "t-running")
	require.Equal(t, fixture.Running, running.Status, "its worker records the cancel")
	require.Equal(t, "duplicate", running.CancelReason)

	// A succeeded task, whatever the form says, has nothing to cancel.
	p = s.post("/cancel", url.Values{"csrf": {token}, "filter": {"status=pending"}, "scope": {"selected"}, "ids": {enc("t-ok")}})
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, "<h1>Nothing to cancel</h1>")
	require.Contains(t, p.body, `task &#34;t-ok&#34; already succeeded (it is s09_success), so there is nothing to cancel: a succeeded task does not run again unless it is reset`)

	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"filter": {"status=succeeded"}, "scope": {"selected"}, "ids": {enc("t-ok")}}, "Only tasks that wait to run or run can be cancelled"},
		{url.Values{"filter": {"status=scheduled"}, "scope": {"all"}}, "the dashboard cancels selected tasks only"},
		{url.Values{"filter": {"status=scheduled"}, "scope": {"selected"}}, "No tasks were selected"},
	} {
		tc.form.Set("csrf", token)
		p := s.post("/cancel", tc.form)
		require.Equal(t, http.StatusBadRequest, p.status, p.body)
		require.Contains(t, p.body, tc.want)
	}
	require.Equal(t, "s09_success", fx.Status(t, "t-ok"))
}

// TestCancelAfterTheTaskChanged confirms a cancel of a scheduled task
// that a worker started and finished after the confirmation was shown:
// the task is left, and the page says so.
func TestCancelAfterTheTaskChanged(t *testing.T) {
	t.Parallel()
	s, fx, _ := scheduledSite(t)
	p := s.post("/cancel", url.Values{"csrf": {s.token()}, "filter": {"status=scheduled"}, "scope": {"selected"}, "ids": {enc("t-later")}})
	require.Equal(t, http.StatusOK, p.status, p.body)
	confirm := hiddenFields(t, p.body)

	fx.Clock.Set(fixture.ScheduledFor)
	require.NoError(t, fx.Tracker.Start(t.Context(), "t-later", func(context.Context, *fixture.Task) error { return nil }))

	confirm.Set("reason", "too late")
	p = s.post("/cancel", confirm)
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "/tasks?status=scheduled&cancelled=0&left=1&running=0", p.header.Get("Location"))
	require.Contains(t, s.get(p.header.Get("Location")).body, "1 left as it was: finished or changed since the confirmation was shown.")
	require.Equal(t, "s09_success", fx.Status(t, "t-later"))
}

func TestDueNow(t *testing.T) {
	t.Parallel()
	s, fx, _ := scheduledSite(t)
	token := s.token()

	p := s.post("/due-now", url.Values{"csrf": {token}, "id": {enc("t-retry")}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "/task?id=t-retry&due=1", p.header.Get("Location"))
	retry := getTask(t, fx, "t-retry")
	require.Equal(t, fixture.Pending, retry.Status)
	require.True(t, fixture.Now.Equal(retry.DueAt), "due at the dashboard's now")
	require.Zero(t, retry.Attempts, "the attempt count restarts")
	require.Contains(t, s.get(p.header.Get("Location")).body, "Task made due now: the next worker that looks for work starts it.")

	// Twice is harmless.
	p = s.post("/due-now", url.Values{"csrf": {token}, "id": {enc("t-retry")}})
	require.Equal(t, "/task?id=t-retry&due=0", p.header.Get("Location"))
	require.Contains(t, s.get(p.header.Get("Location")).body, "The task was due already: nothing changed.")

	p = s.post("/due-now", url.Values{"csrf": {token}, "id": {enc("t-ok")}})
	require.Equal(t, http.StatusConflict, p.status, p.body)
	require.Contains(t, p.body, "Task &#34;t-ok&#34; is s09_success, not scheduled or backing off (s00_todo or s06_failed).")
	require.Contains(t, p.body, "Due-now makes only those due; `ddbtrack reset` runs a task again from any status.")
	require.Equal(t, http.StatusNotFound, s.post("/due-now", url.Values{"csrf": {token}, "id": {enc("t-nope")}}).status)
	require.Equal(t, http.StatusBadRequest, s.post("/due-now", url.Values{"csrf": {token}}).status)
}

// TestScheduleActionsNeedTheToken sends cancel and due-now as another
// site could make a browser send them, and with a read-only dashboard.
func TestScheduleActionsNeedTheToken(t *testing.T) {
	t.Parallel()
	s, fx, _ := scheduledSite(t)
	token := s.token()
	for _, path := range []string{"/cancel", "/due-now"} {
		form := url.Values{"id": {enc("t-later")}, "ids": {enc("t-later")}, "filter": {"status=scheduled"}, "scope": {"selected"},
			"confirm": {"yes"}, "reason": {"x"}}
		p := s.post(path, form)
		require.Equal(t, http.StatusForbidden, p.status, "%s without a token: %s", path, p.body)
		form.Set("csrf", token)
		p = s.post(path, form, "Sec-Fetch-Site", "cross-site")
		require.Equal(t, http.StatusForbidden, p.status, "%s from another site: %s", path, p.body)
	}
	require.Equal(t, "s00_todo", fx.Status(t, "t-later"))

	ro := newSite(t, fx, dashboard.Options{ReadOnly: true})
	for _, path := range []string{"/tasks?status=scheduled", "/task?id=t-later", "/task?id=t-retry"} {
		p := ro.get(path)
		require.NotContains(t, p.body, `method="post"`, path)
	}
	for _, path := range []string{"/cancel", "/due-now"} {
		p := ro.post(path, url.Values{"id": {enc("t-later")}, "ids": {enc("t-later")}, "filter": {"status=scheduled"}, "scope": {"selected"}, "confirm": {"yes"}, "reason": {"x"}})
		require.Equal(t, http.StatusForbidden, p.status)
		require.Contains(t, p.body, "read-only")
	}
	require.Equal(t, "s00_todo", fx.Status(t, "t-later"))
}

func getTask(t *testing.T, fx *fixture.Fixture, id string) *fixture.Task {
	t.Helper()
	task, err := fx.Tracker.Get(t.Context(), id)
	require.NoError(t, err)
	return task
}
