package dashboard

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ddbtrack/ddbtrack/dashboard/ops"
)

type errorsPage struct {
	Query      listQuery
	Filter     string
	FormFilter string
	Report     ops.ErrorReport
	Groups     []groupRow
	CanRequeue bool
	Flash      flash
	Limit      int
}

type groupRow struct {
	ops.ErrorGroup
	// Headline is the pattern's first line, for the table; the rest shows
	// on hover and in the example.
	Headline string
	// Share is the group's share of the errors read, in percent.
	Share int
}

// errorsLimit bounds how many tasks one load of the errors page reads. It
// is a variable so that tests can make it small.
var errorsLimit = ops.DefaultErrorLimit

// errors groups the failed and ignored tasks by their normalised last
// error, the largest group first, so that thousands of failures with a
// handful of causes fit on one screen.
func (s *server[S]) errors(w http.ResponseWriter, r *http.Request) error {
	now := s.opts.Now()
	v := r.URL.Query()
	if v.Get("status") == "" {
		v.Set("status", string(ops.Failed)+","+string(ops.Ignored))
	}
	q, f, err := s.readList(v, now)
	if err != nil {
		return err
	}
	rep, err := s.job.Errors(r.Context(), f, now, errorsLimit)
	if err != nil {
		return err
	}
	p := errorsPage{
		Query:      q,
		Filter:     f.Describe(s.st),
		FormFilter: q.values().Encode(),
		Report:     rep,
		CanRequeue: !s.opts.ReadOnly && s.requeueable(f),
		Flash:      s.readFlash(r.URL.Query()),
		Limit:      errorsLimit,
	}
	total := 0
	for _, g := range rep.Groups {
		total += g.Count
	}
	for _, g := range rep.Groups {
		head, _, _ := strings.Cut(g.Pattern, "\n")
		p.Groups = append(p.Groups, groupRow{ErrorGroup: g, Headline: head, Share: 100 * g.Count / max(total, 1)})
	}
	s.render(w, r, http.StatusOK, "errors", p)
	return nil
}

// requeueGroup counts the tasks of one error group and asks to confirm;
// the confirmed form moves them, in batches, and returns to the errors
// page with the outcome.
func (s *server[S]) requeueGroup(w http.ResponseWriter, r *http.Request) error {
	form := r.PostForm
	now := s.opts.Now()
	q, f, err := s.postedList(form, now)
	if err != nil {
		return err
	}
	if !s.requeueable(f) {
		return badRequest("Only failed, ignored and stuck tasks can be requeued.")
	}
	f.Group = form.Get("group")
	if f.Group == "" {
		return badRequest("Which group? The form named none. Reload the errors page and try again.")
	}
	// The confirmation's filter pins the time of the count; the page to
	// return to is the one the operator came from.
	view, err := url.ParseQuery(form.Get("view"))
	if err != nil {
		return badRequest("The form's view is damaged. Reload the errors page and try again.")
	}
	if form.Get("view") == "" {
		view = q.values()
	}
	back := "/errors?" + view.Encode()
	if form.Get("confirm") != "yes" {
		res, err := s.job.Requeue(r.Context(), f, now, true, nil)
		if err != nil {
			return err
		}
		// The confirmation requeues the tasks of the group that failed
		// by the time they were counted, not those that fail later.
		confirmed := absolute(q, f)
		confirmed.Set("until", now.Add(time.Millisecond).UTC().Format(time.RFC3339Nano))
		s.render(w, r, http.StatusOK, "confirm", confirmPage{
			Action:  s.link("/errors/requeue"),
			Matched: res.Matched, Filter: f.Describe(s.st), Pending: s.st.Name(s.st.Of(ops.Pending)),
			Fields:    []field{{"filter", confirmed.Encode()}, {"view", view.Encode()}, {"group", f.Group}, {"confirm", "yes"}},
			CancelURL: s.link(back),
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
