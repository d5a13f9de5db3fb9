package dashboard

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
)

// This file holds the actions that change when, or whether, a task runs:
// cancel and make due now.

// maxReason bounds a cancel's reason as the form takes it. The library
// keeps 2 KiB of it; a reason is a sentence.
const maxReason = 500

type cancelPage struct {
	Action  string
	Matched int
	Running int
	Filter  string
	Ignored string
	Tasks   []cancelRow
	Refused []ops.Refusal
	Fields  []field
	BackURL string
	// MaxReason bounds the reason's field.
	MaxReason int
}

// cancelRow is a task a cancel will stop, as its confirmation lists it.
type cancelRow struct {
	ID, Status, Class, When string
}

// cancel lists the selected tasks that a cancel would stop and asks for a
// reason and a confirmation; the confirmed form cancels them and
// redirects back with the outcome. Only selected tasks are cancelled, from
// a list or a task's page, never every task a filter matches: a cancel is
// final, and a list's filter can match far more than the page shows.
func (s *server[S]) cancel(w http.ResponseWriter, r *http.Request) error {
	form := r.PostForm
	now := s.opts.Now()
	q, f, err := s.postedList(form, now)
	if err != nil {
		return err
	}
	if !s.cancellable(f) {
		return badRequest("Only tasks that wait to run or run can be cancelled: succeeded and ignored tasks have finished.")
	}
	if scope := form.Get("scope"); scope != "selected" {
		return badRequest("Unknown cancel scope %q: the dashboard cancels selected tasks only.", scope)
	}
	if err := s.selected(form, &f, "Tick some tasks, then use “Cancel selected”."); err != nil {
		return err
	}
	back, fromTask, err := returnTo(form, q)
	if err != nil {
		return err
	}

	if form.Get("confirm") != "yes" {
		return s.confirmCancel(w, r, q, f, back, fromTask, now)
	}

	reason := strings.TrimSpace(form.Get("reason"))
	switch {
	case reason == "":
		return badRequest("Give a reason for the cancel: it is stored with each task, so that whoever finds the task later knows why it did not run. Go back and fill it in.")
	case len([]rune(reason)) > maxReason:
		return badRequest("The reason is longer than %d characters: a sentence says why; keep the details in your ticket.", maxReason)
	}
	res, err := s.job.Cancel(r.Context(), f, reason, now, false)
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "dashboard cancel", "job", s.job.Name(), "filter", f.Describe(s.st), "reason", reason,
		"matched", res.Matched, "cancelled", res.Cancelled, "running", res.Running, "refused", len(res.Refused), "remote", r.RemoteAddr)
	s.redirect(w, r, back, url.Values{
		"cancelled": {strconv.Itoa(res.Cancelled)},
		"running":   {strconv.Itoa(res.Running)},
		"left":      {strconv.Itoa(len(f.IDs) - res.Cancelled)},
	})
	return nil
}

// confirmCancel shows what a cancel of the selected tasks would stop, and
// asks for a reason and a confirmation.
func (s *server[S]) confirmCancel(w http.ResponseWriter, r *http.Request, q listQuery, f ops.Filter[S], back, fromTask string, now time.Time) error {
	res, err := s.job.Cancel(r.Context(), f, "", now, true)
	if err != nil {
		return err
	}
	confirmed := absolute(q, f)
	p := cancelPage{
		Action: s.link("/cancel"), Matched: res.Matched, Running: res.Running, Filter: f.Describe(s.st),
		Ignored: s.st.Name(s.st.Of(ops.Ignored)), Refused: res.Refused, BackURL: s.link(back), MaxReason: maxReason,
		Fields: []field{{"filter", confirmed.Encode()}, {"scope", "selected"}, {"confirm", "yes"}},
	}
	if fromTask != "" {
		p.Fields = append(p.Fields, field{"from_task", encodeText(fromTask)})
	}
	for _, t := range res.Tasks {
		p.Fields = append(p.Fields, field{"ids", encodeText(t.ID)})
		p.Tasks = append(p.Tasks, cancelRow{ID: t.ID, Status: s.st.Name(t.Status), Class: s.statusClass(t.Status), When: s.st.When(t, now)})
	}
	s.render(w, r, http.StatusOK, "cancel", p)
	return nil
}

// dueNow makes a scheduled or backing-off task due now. The task page asks
// the browser to confirm first, as for a reset: the change is small (the
// task would run later anyway), but it restarts the attempt count.
func (s *server[S]) dueNow(w http.ResponseWriter, r *http.Request) error {
	id, err := postedID(r.PostForm)
	if err != nil {
		return err
	}
	due := "1"
	_, err = s.job.DueNow(r.Context(), id, s.opts.Now())
	switch {
	case errors.Is(err, ops.ErrAlreadyDue):
		due = "0"
	case err != nil:
		return err
	}
	s.log.InfoContext(r.Context(), "dashboard due now", "job", s.job.Name(), "task", id, "already_due", due == "0", "remote", r.RemoteAddr)
	s.redirect(w, r, "/task?"+url.Values{"id": {id}}.Encode(), url.Values{"due": {due}})
	return nil
}

// isRefusal reports whether err refuses an action because of the state of
// a task, which a page reports as a conflict rather than as a failure of
// DynamoDB.
func isRefusal(err error) bool {
	var (
		te *ddbtrack.TaskError
		se *ops.StatusError
	)
	return errors.As(err, &te) || errors.As(err, &se) || errors.Is(err, ops.ErrChanged)
}
