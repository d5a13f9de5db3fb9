package dashboard

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
)

// Page sizes a list offers; the first is the default.
var pageSizes = []int{50, 100, 200, 500}

// ago says how long ago something was, in whole seconds: "just now",
// "12 s ago", "3 min 5 s ago".
func ago(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	}
	return fmt.Sprintf("%d min %d s ago", int(d.Minutes()), int(d.Seconds())%60)
}

func (s *server[S]) funcs() template.FuncMap {
	return template.FuncMap{
		"time": ops.FormatTime,
		"age": func(t, now time.Time) string {
			if t.IsZero() {
				return ""
			}
			d := now.Sub(t)
			suffix := " ago"
			if d < 0 {
				d, suffix = -d, " from now"
			}
			return ops.Age(d) + suffix
		},
		"statusName":  func(c S) string { return s.st.Name(c) },
		"statusClass": s.statusClass,
		// text and line show text from the table: every control and
		// bidirectional character as a visible escape, so that no ID or
		// error can reorder or hide what the page shows. line shows one
		// line, for IDs and names.
		"text": func(v string) string { return ops.Visible(v, true) },
		"line": func(v string) string { return ops.Visible(v, false) },
		"cut":  func(max int, v string) string { return cut(v, max) },
		"firstLine": func(v string, max int) string {
			line, _, more := strings.Cut(strings.TrimSpace(v), "\n")
			line = cut(ops.Visible(line, false), max)
			if more && !strings.HasSuffix(line, "…") {
				line += " …"
			}
			return line
		},
		"taskURL": s.taskURL,
		"enc":     encodeText,
		"list":    func(v ...string) []string { return v },
		"px":      func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) },
	}
}

// cut shortens text to max runes, ending it with an ellipsis.
func cut(v string, max int) string {
	if r := []rune(v); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return v
}

func (s *server[S]) taskURL(id string) string {
	return s.link("/task?" + url.Values{"id": {id}}.Encode())
}

// statusClass is the CSS class that colours a status by its role.
func (s *server[S]) statusClass(c S) string {
	if r := s.st.RoleOf(c); r != "" {
		return "s-" + string(r)
	}
	return "s-other"
}

// statusParam is how URLs name a status: its role, or its number.
func (s *server[S]) statusParam(c S) string {
	if r := s.st.RoleOf(c); r != "" {
		return string(r)
	}
	return strconv.Itoa(int(c))
}

type card struct {
	Name, Role, Class, URL string
	Value                  int
	Count                  int64
}

type overviewPage[S ddbtrack.Status] struct {
	Counts  ops.Counts[S]
	Cards   []card
	Stuck   card
	Chart   chart
	Window  string
	Windows []string
	// NoTasks says the job is empty, and why that may be.
	NoTasks string
	// CountedAgo says how old the counts are, which the job's shared
	// counts may be (Config.CountMaxAge).
	CountedAgo string
}

func (s *server[S]) overview(w http.ResponseWriter, r *http.Request) error {
	// The first page checks that the table and the status names are
	// right, so that a wrong table fails here with its fix rather than
	// showing zeros.
	if _, err := s.health.ensure(r.Context()); err != nil {
		return err
	}
	now := s.opts.Now()
	win := windows[defaultWindow]
	if name := r.URL.Query().Get("window"); name != "" {
		i := slices.IndexFunc(windows, func(w window) bool { return w.Name == name })
		if i < 0 {
			return badRequest("Unknown chart window %q: use one of %s.", name, windowNames())
		}
		win = windows[i]
	}
	// The chart is read before the counts, whose refresh, when this load
	// falls on one, goes on after the page: on a server that one process
	// serves, such as dynalite, the chart's reads would otherwise queue
	// behind the count's, and take a second instead of a tenth at 100,000
	// tasks.
	c, err := s.buildChart(r.Context(), now, win)
	if err != nil {
		return err
	}
	counts, err := s.counter.Count(r.Context(), now)
	if err != nil {
		return err
	}
	p := overviewPage[S]{Counts: counts, Chart: c, Window: win.Name, Windows: windowNames(), CountedAgo: ago(now.Sub(counts.At))}
	if counts.Total == 0 {
		p.NoTasks = capitalize(s.job.NoTasks(r.Context())) + "."
	}
	for _, sc := range counts.Statuses {
		p.Cards = append(p.Cards, card{
			Name: sc.Name, Role: string(sc.Role), Class: s.statusClass(sc.Status), Value: int(sc.Status), Count: sc.Count,
			URL: s.link("/tasks?" + url.Values{"status": {s.statusParam(sc.Status)}}.Encode()),
		})
	}
	p.Stuck = card{Name: "stuck", Role: "running, lease expired", Class: "s-stuck", Count: int64(counts.Stuck), URL: s.link("/tasks?status=stuck")}
	s.render(w, r, http.StatusOK, "overview", p)
	return nil
}

// listQuery is a task list's filter as it appears in URLs and forms.
type listQuery struct {
	// Status is "stuck", "all", or a comma-separated list of roles, names
	// or values.
	Status                  string
	Since, Until, Error, ID string
	Cursor                  string
	Limit                   int
}

// values returns the query without its cursor, for links and hidden fields.
func (q listQuery) values() url.Values {
	v := url.Values{"status": {q.Status}}
	for k, x := range map[string]string{"since": q.Since, "until": q.Until, "error": q.Error, "id": q.ID} {
		if x != "" {
			v.Set(k, x)
		}
	}
	if q.Limit != pageSizes[0] {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// readList reads a list's filter from a URL query or a form.
func (s *server[S]) readList(v url.Values, now time.Time) (listQuery, ops.Filter[S], error) {
	q := listQuery{
		Status: strings.TrimSpace(v.Get("status")),
		Since:  strings.TrimSpace(v.Get("since")),
		Until:  strings.TrimSpace(v.Get("until")),
		Error:  v.Get("error"),
		ID:     v.Get("id"),
		Cursor: v.Get("cursor"),
		Limit:  pageSizes[0],
	}
	if q.Status == "" {
		q.Status = string(ops.Failed)
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > pageSizes[len(pageSizes)-1] {
			return q, ops.Filter[S]{}, badRequest("Page size %q is not a number from 1 to %d.", l, pageSizes[len(pageSizes)-1])
		}
		q.Limit = n
	}
	f := ops.Filter[S]{ErrorContains: q.Error, IDContains: q.ID}
	var err error
	switch q.Status {
	case "stuck":
		f.Stuck = true
	case "scheduled":
		f.Scheduled = true
	case "all":
		f.Statuses = s.st.All()
	default:
		if f.Statuses, err = s.st.LookupList(q.Status); err != nil {
			return q, f, badRequest("%s", capitalize(err.Error()))
		}
	}
	if f.Since, err = ops.ParseTime(q.Since, now); err != nil {
		return q, f, badRequest("From: %v", err)
	}
	if f.Until, err = ops.ParseTime(q.Until, now); err != nil {
		return q, f, badRequest("To: %v", err)
	}
	if err := f.Check(s.st); err != nil {
		return q, f, badRequest("%s", capitalize(err.Error()))
	}
	return q, f, nil
}

// newestFirst says whether a list shows the latest due time first, as it
// does but for tasks that wait for a time, where the soonest due, the next
// to start, comes first.
func newestFirst[S ddbtrack.Status](f ops.Filter[S]) bool { return !f.Scheduled }

type tab struct{ Name, Label, URL string }

type tasksPage[S ddbtrack.Status] struct {
	Query      listQuery
	Filter     string
	FormFilter string
	Tasks      []taskRow[S]
	NextURL    string
	FirstURL   string
	CanRequeue bool
	CanCancel  bool
	ShowLease  bool
	// ShowDue shows when each task may start, or when it was cancelled,
	// in a column of its own, when a listed task is not due yet or was
	// cancelled: on a list of failures that are all due, "due now" on
	// every row would say nothing.
	ShowDue   bool
	Tabs      []tab
	PageSizes []int
	Flash     flash
}

// CanSelect says the list has tick boxes, for an action on the selection.
func (p tasksPage[S]) CanSelect() bool { return p.CanRequeue || p.CanCancel }

type taskRow[S ddbtrack.Status] struct {
	*ddbtrack.Task[S]
	Stuck bool
	// When says when the task may start, or when it was cancelled.
	When string
}

// flash reports the outcome of an action, from the redirect's query. It
// holds numbers only, so a crafted link cannot put words on the page.
type flash struct {
	Requeued       bool
	Moved, Skipped int
	Reset          bool
	Pending        string
	// Cancelled reports a cancel: how many tasks it cancelled, how many
	// of them were running, and how many it left.
	Cancelled                          bool
	CancelledN, Running, CancelSkipped int
	Ignored                            string
	// DueNow reports a task made due now, and AlreadyDue one that was.
	DueNow, AlreadyDue bool
}

func (s *server[S]) readFlash(v url.Values) flash {
	f := flash{Pending: s.st.Name(s.st.Of(ops.Pending)), Ignored: s.st.Name(s.st.Of(ops.Ignored))}
	if m, err := strconv.Atoi(v.Get("moved")); err == nil {
		f.Requeued, f.Moved = true, m
		f.Skipped, _ = strconv.Atoi(v.Get("skipped"))
	}
	if n, err := strconv.Atoi(v.Get("cancelled")); err == nil {
		f.Cancelled, f.CancelledN = true, n
		f.Running, _ = strconv.Atoi(v.Get("running"))
		f.CancelSkipped, _ = strconv.Atoi(v.Get("left"))
	}
	f.Reset = v.Get("reset") == "1"
	f.DueNow, f.AlreadyDue = v.Get("due") == "1", v.Get("due") == "0"
	return f
}

// tabs are the lists the header offers, most urgent first.
func (s *server[S]) tabs() []tab {
	out := []tab{}
	for _, r := range []ops.Role{ops.Failed, ops.Ignored} {
		out = append(out, tab{string(r), string(r), s.link("/tasks?status=" + string(r))})
	}
	out = append(out, tab{"stuck", "stuck", s.link("/tasks?status=stuck")})
	for _, r := range []ops.Role{ops.Running, ops.Pending} {
		out = append(out, tab{string(r), string(r), s.link("/tasks?status=" + string(r))})
	}
	out = append(out, tab{"scheduled", "scheduled", s.link("/tasks?status=scheduled")})
	out = append(out, tab{string(ops.Succeeded), string(ops.Succeeded), s.link("/tasks?status=" + string(ops.Succeeded))})
	return append(out, tab{"all", "all", s.link("/tasks?status=all")})
}

// requeueable reports whether a list's tasks may be requeued: failed,
// ignored and stuck tasks can be; pending ones need not be, live running
// ones must not be, and succeeded ones are rerun with reset, one by one.
func (s *server[S]) requeueable(f ops.Filter[S]) bool {
	if f.Stuck {
		return true
	}
	for _, c := range f.Statuses {
		if c != s.st.Of(ops.Failed) && c != s.st.Of(ops.Ignored) {
			return false
		}
	}
	return len(f.Statuses) > 0
}

// cancellable reports whether a list's tasks may be cancelled: those that
// wait to run, scheduled ones included, and running ones. Succeeded and
// ignored tasks have finished.
func (s *server[S]) cancellable(f ops.Filter[S]) bool {
	if f.Stuck || f.Scheduled && len(f.Statuses) == 0 {
		return true
	}
	for _, c := range f.Statuses {
		if !slices.Contains(s.st.Cancellable(), c) {
			return false
		}
	}
	return len(f.Statuses) > 0
}

func (s *server[S]) tasks(w http.ResponseWriter, r *http.Request) error {
	// A later page is read as of the time of the first, so that ages such
	// as "6h" and "stuck" select the same tasks on every page.
	now := s.opts.Now()
	pinned, cursor, err := ops.DecodeCursor(r.URL.Query().Get("cursor"))
	if err != nil {
		return badRequest("%s", capitalize(err.Error()))
	}
	if !pinned.IsZero() {
		now = pinned
	}
	q, f, err := s.readList(r.URL.Query(), now)
	if err != nil {
		return err
	}
	page, err := s.job.Page(r.Context(), f, now, newestFirst(f), q.Limit, cursor)
	if ops.IsInvalidCursor(err) {
		return badRequest("This page's link no longer fits its filter (%v). Start again from the first page.", err)
	}
	if err != nil {
		return err
	}
	p := tasksPage[S]{
		Query:      q,
		Filter:     f.Describe(s.st),
		FormFilter: q.values().Encode(),
		CanRequeue: !s.opts.ReadOnly && s.requeueable(f),
		CanCancel:  !s.opts.ReadOnly && s.cancellable(f),
		Tabs:       s.tabs(),
		PageSizes:  pageSizes,
		Flash:      s.readFlash(r.URL.Query()),
		FirstURL:   s.link("/tasks?" + q.values().Encode()),
	}
	for _, t := range page.Tasks {
		p.Tasks = append(p.Tasks, taskRow[S]{Task: t, Stuck: s.st.IsStuck(t, now), When: s.st.When(t, now)})
		p.ShowLease = p.ShowLease || t.LeaseOwner != ""
		p.ShowDue = p.ShowDue || s.st.NotDue(t, now) || !t.CancelledAt.IsZero()
	}
	if page.Cursor != "" {
		v := q.values()
		v.Set("cursor", ops.EncodeCursor(now, page.Cursor))
		p.NextURL = s.link("/tasks?" + v.Encode())
	}
	s.render(w, r, http.StatusOK, "tasks", p)
	return nil
}

type taskPage[S ddbtrack.Status] struct {
	T             *ddbtrack.Task[S]
	Status        string
	Role          string
	Class         string
	Stuck         bool
	Locked        bool
	Data, Output  payload
	Errors        []ddbtrack.ErrorRecord // newest first
	CanRequeue    bool
	RequeueFilter string
	// Due says when a waiting task may start, and Cancel when and why the
	// task was cancelled; each is "" when it does not apply.
	Due, Cancel string
	// CanDueNow offers to make a scheduled or backing-off task due now.
	CanDueNow bool
	// CanCancel offers to cancel a task that waits or runs and has no
	// cancel asked for yet, through a confirmation with the list filter
	// CancelFilter.
	CanCancel    bool
	CancelFilter string
	Flash        flash
}

// payload is a task's data or output as its page shows it: collapsed when
// big, so that the error history above it stays in view.
type payload struct {
	Text string
	Big  bool
	Size int
}

// bigPayload is the size of data or output above which a task's page
// shows it collapsed.
const bigPayload = 1500

func newPayload(text string) payload {
	return payload{Text: text, Big: len(text) > bigPayload || strings.Count(text, "\n") > 30, Size: len(text)}
}

func (s *server[S]) task(w http.ResponseWriter, r *http.Request) error {
	id := r.URL.Query().Get("id")
	if id == "" {
		return badRequest("Which task? Open one from a list, or search for its ID.")
	}
	t, err := s.job.Get(r.Context(), id)
	if err != nil {
		return err
	}
	now := s.opts.Now()
	data, output, err := ops.Payloads(t)
	if err != nil {
		return err
	}
	p := taskPage[S]{
		T:      t,
		Status: s.st.Name(t.Status),
		Role:   string(s.st.RoleOf(t.Status)),
		Class:  s.statusClass(t.Status),
		Stuck:  s.st.IsStuck(t, now),
		Locked: t.LeaseOwner != "" && now.Before(t.LeaseExpiresAt),
		Data:   newPayload(data),
		Output: newPayload(output),
		Errors: slices.Clone(t.Errors),
		Flash:  s.readFlash(r.URL.Query()),
		Due:    s.st.Due(t, now),
		Cancel: s.st.Cancel(t, now),
	}
	slices.Reverse(p.Errors)
	if p.Due != "" && !s.st.NotDue(t, now) {
		p.Due = "now" // Beside the label "Due", "due now" says it twice.
	}
	if !s.opts.ReadOnly {
		status := ""
		switch {
		case p.Stuck:
			status = "stuck"
		case t.Status == s.st.Of(ops.Failed) || t.Status == s.st.Of(ops.Ignored):
			status = s.statusParam(t.Status)
		}
		if status != "" {
			p.CanRequeue, p.RequeueFilter = true, url.Values{"status": {status}}.Encode()
		}
		p.CanDueNow = s.st.NotDue(t, now) && (t.Status == s.st.Of(ops.Pending) || t.Status == s.st.Of(ops.Failed))
		if slices.Contains(s.st.Cancellable(), t.Status) && t.CancelledAt.IsZero() {
			p.CanCancel, p.CancelFilter = true, url.Values{"status": {s.statusParam(t.Status)}}.Encode()
		}
	}
	s.render(w, r, http.StatusOK, "task", p)
	return nil
}

// search opens the task with the ID searched for, or lists the tasks whose
// IDs contain it.
func (s *server[S]) search(w http.ResponseWriter, r *http.Request) error {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" {
		s.redirect(w, r, "/tasks?status=all", nil)
		return nil
	}
	_, err := s.job.Get(r.Context(), q)
	switch {
	case err == nil:
		s.redirect(w, r, "/task?"+url.Values{"id": {q}}.Encode(), nil)
	case ops.IsNotFound(err), ops.IsBadInput(err):
		s.redirect(w, r, "/tasks?"+url.Values{"status": {"all"}, "id": {q}}.Encode(), nil)
	default:
		return err
	}
	return nil
}

type confirmPage struct {
	Action    string
	Matched   int
	Filter    string
	Pending   string
	Selected  []string
	Refused   []ops.Refusal
	Fields    []field
	CancelURL string
}

type field struct{ Name, Value string }

// selected adds the tasks a form's "ids" fields name to f, and checks f;
// none is a bad request, whose message ends with what to do instead.
func (s *server[S]) selected(form url.Values, f *ops.Filter[S], none string) error {
	for _, enc := range form["ids"] {
		id, err := decodeText("ids", enc)
		if err != nil {
			return err
		}
		f.IDs = append(f.IDs, id)
	}
	if len(f.IDs) == 0 {
		return badRequest("No tasks were selected. %s", none)
	}
	if err := f.Check(s.st); err != nil {
		return badRequest("%s", capitalize(err.Error()))
	}
	return nil
}

// returnTo returns where an action posted from list q goes back to: the
// list, or the task's page it was posted from (its "from_task" field),
// with that task's ID.
func returnTo(form url.Values, q listQuery) (back, fromTask string, err error) {
	enc := form.Get("from_task")
	if enc == "" {
		return "/tasks?" + q.values().Encode(), "", nil
	}
	if fromTask, err = decodeText("from_task", enc); err != nil {
		return "", "", err
	}
	return "/task?" + url.Values{"id": {fromTask}}.Encode(), fromTask, nil
}

// absolute returns list q's query with the times of filter f, as a
// confirmation form sends them: relative times ("6h") would move between
// the count and the confirmation, so the confirmation sends the absolute
// times counted.
func absolute[S ddbtrack.Status](q listQuery, f ops.Filter[S]) url.Values {
	v := q.values()
	if !f.Since.IsZero() {
		v.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		v.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	return v
}

// postedID reads the task a form acts on, from its "id" field.
func postedID(form url.Values) (string, error) {
	enc := form.Get("id")
	if enc == "" {
		return "", badRequest("Which task? The form named none.")
	}
	return decodeText("id", enc)
}

// postedList reads the list a form was posted from: the filter it carries
// in its "filter" field, which is the list's URL query, encoded so that it
// holds no line breaks for the browser to change.
func (s *server[S]) postedList(form url.Values, now time.Time) (listQuery, ops.Filter[S], error) {
	v, err := url.ParseQuery(form.Get("filter"))
	if err != nil {
		return listQuery{}, ops.Filter[S]{}, badRequest("The form's filter is damaged. Reload the page and try again.")
	}
	return s.readList(v, now)
}

// requeue counts the tasks a requeue would move and asks to confirm; the
// confirmed form moves them and redirects back with the outcome.
func (s *server[S]) requeue(w http.ResponseWriter, r *http.Request) error {
	form := r.PostForm
	now := s.opts.Now()
	q, f, err := s.postedList(form, now)
	if err != nil {
		return err
	}
	if !s.requeueable(f) {
		return badRequest("Only failed, ignored and stuck tasks can be requeued; use Reset on a task to run it again from another status.")
	}
	scope := form.Get("scope")
	switch scope {
	case "selected":
		if err := s.selected(form, &f, "Tick some tasks, or use “Requeue all matching”."); err != nil {
			return err
		}
	case "all":
	default:
		return badRequest("Unknown requeue scope %q.", scope)
	}
	back, fromTask, err := returnTo(form, q)
	if err != nil {
		return err
	}

	if form.Get("confirm") != "yes" {
		res, err := s.job.Requeue(r.Context(), f, now, true, nil)
		if err != nil {
			return err
		}
		confirmed := absolute(q, f)
		fields := []field{{"filter", confirmed.Encode()}, {"scope", scope}, {"confirm", "yes"}}
		if fromTask != "" {
			fields = append(fields, field{"from_task", encodeText(fromTask)})
		}
		for _, id := range f.IDs {
			fields = append(fields, field{"ids", encodeText(id)})
		}
		s.render(w, r, http.StatusOK, "confirm", confirmPage{
			Action:  s.link("/requeue"),
			Matched: res.Matched, Filter: f.Describe(s.st), Pending: s.st.Name(s.st.Of(ops.Pending)),
			Selected: f.IDs, Refused: res.Refused, Fields: fields, CancelURL: s.link(back),
		})
		return nil
	}

	res, err := s.job.Requeue(r.Context(), f, now, false, nil)
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "dashboard requeue", "job", s.job.Name(), "filter", f.Describe(s.st), "matched", res.Matched, "moved", res.Moved, "skipped", res.Skipped, "remote", r.RemoteAddr)
	s.redirect(w, r, back, url.Values{"moved": {strconv.Itoa(res.Moved)}, "skipped": {strconv.Itoa(res.Skipped)}})
	return nil
}

func (s *server[S]) reset(w http.ResponseWriter, r *http.Request) error {
	id, err := postedID(r.PostForm)
	if err != nil {
		return err
	}
	if err := s.job.Reset(r.Context(), id); err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "dashboard reset", "job", s.job.Name(), "task", id, "remote", r.RemoteAddr)
	s.redirect(w, r, "/task?"+url.Values{"id": {id}}.Encode(), url.Values{"reset": {"1"}})
	return nil
}
