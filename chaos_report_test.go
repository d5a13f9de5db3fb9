//go:build unix

package ddbtrack_test

// The checks of TestChaos. They compare three records of the run: the
// table, the workers' logs (every run of fn, every report from Process and
// what Process returned), and TestChaos's own record of when it killed,
// paused and cut off which worker. Each violation names the assertion it
// breaks; every repeated execution is listed with its cause.

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
)

// The assertions, as issue 9 words them, and one more that the history
// makes possible.
const (
	aFinished = "every task ends Succeeded or Ignored"
	aOutput   = "each stored output belongs to a run that started with the stored fence"
	aStale    = "no outcome write with a stale fence was accepted"
	aAgree    = "what Process returned and counted agrees with the table"
	aOutage   = "no task ran again because of an outage shorter than FinishTimeout"
	aHistory  = "the history accounts for every attempt"
)

var chaosAssertions = []string{aFinished, aOutput, aStale, aAgree, aOutage, aHistory}

// chaosRun is one run of fn, as its worker logged it, and what became of
// it.
type chaosRun struct {
	id, task string
	proc     *chaosProc
	fence    int64
	attempt  int
	// start and end are when fn started and returned; end is zero if it
	// never returned. ended says how: "ok", "failed" or "stopped".
	start, end time.Time
	ended      string
	// outcome is what Process reported for the attempt, and when.
	outcome   string
	outcomeAt time.Time
	// errorAt and errorText are the first error Process reported about the
	// task after fn returned without an outcome: a write that failed.
	errorAt   time.Time
	errorText string
	// recorded is what the table holds of the run: "success", "failure", or
	// nothing.
	recorded string
}

// chaosReport is the outcome of the checks.
type chaosReport struct {
	began      time.Time
	plan       chaosPlan
	r          *chaosRig
	statuses   map[string]int
	runs       int
	unrun      int
	torn       int
	causes     map[string]int
	repeats    []string
	findings   []string
	violations map[string][]string
}

// runRef finds the run that wrote a failure into the history.
var runRef = regexp.MustCompile(`run (\S+) \(fence (\d+)\)`)

func (rep *chaosReport) violate(assertion, format string, args ...any) {
	rep.violations[assertion] = append(rep.violations[assertion], fmt.Sprintf(format, args...))
}

// at formats a time as seconds since the workers started.
func (rep *chaosReport) at(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("%.2fs", t.Sub(rep.began).Seconds())
}

func analyseChaos(t *testing.T, r *chaosRig, tasks map[string]*ddbtrack.Task[Step]) *chaosReport {
	t.Helper()
	rep := &chaosReport{
		began: r.began, plan: r.plan, r: r,
		statuses: map[string]int{}, causes: map[string]int{}, violations: map[string][]string{},
	}

	// The logs: runs by ID and by the attempt they ran, and each worker's
	// reports, matched to its runs by task and fence, which one claim
	// fixes.
	runs := map[string]*chaosRun{}
	byTask := map[string][]*chaosRun{}
	type attemptKey struct {
		proc  *chaosProc
		task  string
		fence int64
	}
	byAttempt := map[attemptKey]*chaosRun{}
	for _, p := range r.procs {
		lines, torn, err := readChaosLog(p.log)
		if os.IsNotExist(err) {
			continue // Killed before it wrote a line.
		}
		require.NoError(t, err)
		rep.torn += torn
		reported := map[string]int{}
		var result *chaosLine
		for i := range lines {
			l := &lines[i]
			switch l.Ev {
			case "start":
				run := &chaosRun{id: l.Run, task: l.Task, proc: p, fence: l.Fence, attempt: l.Attempt, start: l.T}
				require.Nil(t, runs[l.Run], "run %s logged twice", l.Run)
				runs[l.Run] = run
				byTask[l.Task] = append(byTask[l.Task], run)
				byAttempt[attemptKey{p, l.Task, l.Fence}] = run
			case "end":
				run := runs[l.Run]
				require.NotNil(t, run, "run %s ended without starting", l.Run)
				run.end, run.ended = l.T, l.Kind
			case "event":
				reported[l.Kind]++
				switch l.Kind {
				case evSucceeded, evFailed, evIgnored, evLeaseLost, evReleased:
					run := byAttempt[attemptKey{p, l.Task, l.Fence}]
					if run == nil {
						// An attempt that never ran fn: a task that had
						// killed too many workers is made Ignored unrun,
						// and a claim Start cannot go on with may be
						// released (issue 9 point 5).
						if l.Kind != evIgnored && l.Kind != evReleased {
							rep.violate(aAgree, "%s: %s reported %s for fence %d at %s, which no run of it started with",
								l.Task, p.name, l.Kind, l.Fence, rep.at(l.T))
						}
						continue
					}
					if run.outcome != "" {
						rep.violate(aAgree, "%s: run %s was reported twice, %s and %s", l.Task, run.id, run.outcome, l.Kind)
					}
					run.outcome, run.outcomeAt = l.Kind, l.T
				case evError:
					// The write that failed is the latest of this worker's
					// runs of the task that ended without an outcome.
					for _, run := range slices.Backward(byTask[l.Task]) {
						if run.proc == p && run.ended != "" && run.outcome == "" && !run.end.After(l.T) {
							if run.errorAt.IsZero() {
								run.errorAt, run.errorText = l.T, l.Err
							}
							break
						}
					}
				}
			case "result":
				result = l
			}
		}
		// What Process returned must agree with what it reported.
		if result != nil {
			c := result.Counts
			if result.Err != "" {
				rep.violate(aAgree, "%s: Process returned %q", p.name, result.Err)
			}
			for kind, n := range map[string]int{
				evClaimed: c.Claimed, evSucceeded: c.Succeeded, evFailed: c.Failed, evIgnored: c.Ignored, evLeaseLost: c.LeaseLost,
			} {
				if reported[kind] != n {
					rep.violate(aAgree, "%s: Process counted %d %s but reported %d (result %+v)", p.name, n, kind, reported[kind], *c)
				}
			}
		} else if p.killed.IsZero() {
			rep.violate(aAgree, "%s: exited without logging what Process returned", p.name)
		}
	}

	ids := make([]string, 0, len(tasks))
	for id := range tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		rep.checkTask(tasks[id], byTask[id], runs)
	}
	rep.runs = len(runs)
	return rep
}

// checkTask checks one task's record against its runs.
func (rep *chaosReport) checkTask(task *ddbtrack.Task[Step], runs []*chaosRun, all map[string]*chaosRun) {
	id := task.ID
	rep.statuses[task.Status.String()]++
	if (task.Status != Success && task.Status != Ignore) || task.LeaseOwner != "" {
		rep.violate(aFinished, "%s ended %s (lease owner %q, expiring %s, fence %d)",
			id, task.Status, task.LeaseOwner, rep.at(task.LeaseExpiresAt), task.Fence)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].fence < runs[j].fence })
	for i := 1; i < len(runs); i++ {
		if runs[i].fence == runs[i-1].fence {
			rep.violate(aOutput, "%s: runs %s and %s both started with fence %d", id, runs[i-1].id, runs[i].id, runs[i].fence)
		}
	}
	// Claims that ran no fn: a claim whose response was lost and whose
	// retries all failed, one that Start could not go on with (issue 9
	// point 5), a worker killed between its claim and fn, or a task made
	// Ignored unrun after too many dead workers.
	for f := int64(1); f <= task.Fence; f++ {
		if slices.ContainsFunc(runs, func(run *chaosRun) bool { return run.fence == f }) {
			continue
		}
		rep.unrun++
		rep.findings = append(rep.findings, fmt.Sprintf("%s: the claim with fence %d ran no fn; faults on this task's claims: %s",
			id, f, rep.faultsOn(id, "claim", time.Time{}, time.Now())))
	}

	// The history: what became of each attempt. A failure names its run;
	// an abandoned attempt and one not run at all name only the attempt.
	seen := map[int][]string{}
	for _, e := range task.Errors {
		switch m := runRef.FindStringSubmatch(e.Message); {
		case m != nil:
			run := all[m[1]]
			if run == nil || run.task != id {
				rep.violate(aAgree, "%s: the history holds a failure of run %s, which no worker logged for it", id, m[1])
				continue
			}
			if fence, _ := strconv.ParseInt(m[2], 10, 64); fence != run.fence {
				rep.violate(aStale, "%s: the history holds a failure of run %s under fence %d, but it started with fence %d", id, run.id, fence, run.fence)
			}
			if run.recorded != "" {
				rep.violate(aStale, "%s: run %s is recorded twice", id, run.id)
			}
			if e.Attempt != run.attempt {
				rep.violate(aStale, "%s: run %s ran attempt %d, but its failure is recorded as attempt %d", id, run.id, run.attempt, e.Attempt)
			}
			run.recorded = "failure"
			seen[e.Attempt] = append(seen[e.Attempt], "failure of "+run.id)
		case isAbandonedEntry(e.Message):
			seen[e.Attempt] = append(seen[e.Attempt], "abandoned")
		case isNotRunEntry(e.Message):
			seen[e.Attempt] = append(seen[e.Attempt], "not run")
		default:
			rep.findings = append(rep.findings, fmt.Sprintf("%s: unexpected history entry for attempt %d: %q", id, e.Attempt, e.Message))
			seen[e.Attempt] = append(seen[e.Attempt], "other")
		}
	}

	// The output names the run that wrote it, and the fence it ran under.
	var final *chaosRun
	if task.Status == Success {
		var out chaosOutput
		err := task.UnmarshalOutput(&out)
		run := all[out.Run]
		switch {
		case err != nil || out.Run == "":
			rep.violate(aOutput, "%s succeeded without a run's output (%v)", id, err)
		case run == nil || run.task != id:
			rep.violate(aOutput, "%s: the output names run %s, which no worker logged for it", id, out.Run)
		case out.Fence != task.Fence:
			rep.violate(aStale, "%s: the output of run %s (fence %d) was accepted, but the task's fence is %d", id, run.id, out.Fence, task.Fence)
		case run.fence != out.Fence:
			rep.violate(aOutput, "%s: the output of run %s says fence %d, but the run started with fence %d", id, run.id, out.Fence, run.fence)
		}
		if run != nil && run.task == id {
			if run.recorded != "" {
				rep.violate(aStale, "%s: run %s is recorded twice", id, run.id)
			}
			run.recorded, final = "success", run
			seen[run.attempt] = append(seen[run.attempt], "success of "+run.id)
		}
	}
	if task.Status == Ignore {
		for _, run := range runs {
			if run.fence == task.Fence && run.recorded == "failure" {
				final = run
			}
		}
	}

	// Each attempt once, and none missing. Attempts grow by one with every
	// claim and go back only with a release, which reuses the number, so
	// the recorded attempts must be 1, 2, ... up to the last.
	last := 0
	for a, kinds := range seen {
		last = max(last, a)
		if len(kinds) > 1 {
			rep.violate(aStale, "%s: attempt %d is recorded %d times: %s", id, a, len(kinds), strings.Join(kinds, ", "))
		}
	}
	for a := 1; a < last; a++ {
		if len(seen[a]) > 0 {
			continue
		}
		// The claim of attempt a+1 took over attempt a's expired lease, and
		// writes "abandoned" for it with its own outcome, unless it had
		// none of its own to write.
		own := slices.ContainsFunc(seen[a+1], func(k string) bool { return k != "abandoned" })
		if own {
			// The proxy's log says whether that claim's response was lost.
			var from, to time.Time
			for _, run := range runs {
				switch run.attempt {
				case a:
					from = run.start
				case a + 1:
					to = run.start
				}
			}
			if to.IsZero() {
				to = time.Now()
			}
			rep.violate(aHistory, "%s: attempt %d is missing from the history, though attempt %d recorded its own outcome, which should have carried it as abandoned; faults on this task's claims in between: %s (a lost takeover claim response is issue 9 point 4)",
				id, a, a+1, rep.faultsOn(id, "claim", from, to))
		} else {
			rep.findings = append(rep.findings, fmt.Sprintf("%s: attempt %d is missing from the history: attempt %d, which took it over, ended without an outcome of its own to carry it", id, a, a+1))
		}
	}

	// Stale writes: a run's outcome must land before any later claim, so
	// no later run may have started before it returned.
	for _, run := range runs {
		if run.recorded == "" || run.end.IsZero() {
			continue
		}
		for _, later := range runs {
			if later.fence > run.fence && later.start.Before(run.end) {
				rep.violate(aStale, "%s: the %s of run %s (fence %d) was accepted, but run %s had claimed the task (fence %d) and started at %s, before run %s returned at %s",
					id, run.recorded, run.id, run.fence, later.id, later.fence, rep.at(later.start), run.id, rep.at(run.end))
			}
		}
	}

	// What Process reported for each run must be what the table holds.
	for _, run := range runs {
		switch {
		case run.outcome == evSucceeded && run.recorded != "success",
			(run.outcome == evFailed || run.outcome == evIgnored) && run.recorded != "failure":
			rep.violate(aAgree, "%s: Process reported run %s (fence %d) as %s, but the table holds %s of it",
				id, run.id, run.fence, run.outcome, orNothing(run.recorded))
		case run.outcome == evIgnored && task.Status != Ignore:
			rep.violate(aAgree, "%s: Process reported run %s as ignored, but the task is %s", id, run.id, task.Status)
		case (run.outcome == evLeaseLost || run.outcome == evReleased) && run.recorded != "":
			rep.violate(aAgree, "%s: Process counted a lost lease for run %s (fence %d), but the table holds its %s (issue 9 point 1)",
				id, run.id, run.fence, run.recorded)
		case run.outcome == "" && run.recorded != "" && run.proc.killed.IsZero():
			rep.violate(aAgree, "%s: the table holds the %s of run %s (fence %d), but Process reported no outcome for it%s",
				id, run.recorded, run.id, run.fence, rep.errorSuffix(run))
		}
	}

	// Every run but the final one is a run the task did not keep.
	for _, run := range runs {
		if run == final {
			continue
		}
		cause, detail, assertion := rep.cause(run)
		rep.causes[cause]++
		if detail != "" {
			detail = "; " + detail
		}
		line := fmt.Sprintf("repeat %s: run %s (fence %d, attempt %d) started %s, returned %s (%s), reported %s: %s%s",
			id, run.id, run.fence, run.attempt, rep.at(run.start), rep.at(run.end), orNothing(run.ended), orNothing(run.outcome), cause, detail)
		rep.repeats = append(rep.repeats, line)
		if assertion != "" {
			rep.violate(assertion, "%s%s", line, rep.errorSuffix(run))
		}
	}
}

// cause says why a run's result did not stand, with details of this run,
// and which assertion that breaks, if any.
func (rep *chaosReport) cause(run *chaosRun) (cause, detail, assertion string) {
	p := run.proc
	paused := func(from, to time.Time) bool {
		return slices.ContainsFunc(p.pauses, func(w window) bool { return w.overlaps(from, to) })
	}
	outage := func(from, to time.Time) bool {
		return slices.ContainsFunc(rep.r.outages, func(w window) bool { return w.overlaps(from, to) })
	}
	switch run.recorded {
	case "failure":
		return "retry after a recorded failure", "", ""
	case "success":
		return "ran again after a recorded success", "", aStale
	}
	switch run.ended {
	case "":
		if !p.killed.IsZero() {
			return "worker killed while fn ran", "", ""
		}
		return "fn never returned, though its worker exited", "", aAgree
	case "stopped":
		switch {
		case paused(run.start, run.end):
			return "lease expired during a pause", "", ""
		case outage(run.start, run.end):
			return "lease lost while renewals met an outage shorter than the lease", "", aOutage
		}
		return "lease lost while fn ran: renewals failed or came late", "", ""
	}
	// fn returned, and its outcome is not in the table.
	switch run.outcome {
	case evReleased:
		return "released", "", ""
	case evLeaseLost:
		switch {
		case paused(run.start, run.outcomeAt):
			return "lease expired during a pause", "", ""
		case outage(run.start, run.outcomeAt):
			return "lease lost in an outage shorter than the lease", "", aOutage
		}
		return "lease lost before the outcome was written", "", ""
	case "":
		// The outcome write ran from fn's return until Process reported
		// its error, or at most FinishTimeout.
		gaveUp := run.errorAt
		if gaveUp.IsZero() {
			gaveUp = run.end.Add(rep.plan.FinishTimeout)
		}
		took := fmt.Sprintf("given up %v after fn returned", gaveUp.Sub(run.end).Round(time.Millisecond))
		switch {
		case !p.killed.IsZero() && p.killed.Before(gaveUp):
			return "worker killed before the outcome was written", "", ""
		case paused(run.end, gaveUp):
			return "worker paused before the outcome was written", "", ""
		case outage(run.end, gaveUp):
			return fmt.Sprintf("outcome not written: lost in an outage (%v) shorter than FinishTimeout (%v)", rep.plan.Outage, rep.plan.FinishTimeout),
				took, aOutage
		}
		return fmt.Sprintf("outcome not written: given up under injected faults before FinishTimeout (%v)", rep.plan.FinishTimeout),
			took + "; faults on its outcome writes: " + rep.faultsOn(run.task, "outcome", run.end, gaveUp), aOutage
	}
	return "outcome reported but not in the table", "", ""
}

// faultsOn lists the faults injected on one kind of write to a task
// between two times.
func (rep *chaosReport) faultsOn(task, write string, from, to time.Time) string {
	var hits []string
	for _, f := range rep.r.faults {
		if f.task == task && f.write == write && !f.at.Before(from) && !f.at.After(to) {
			hits = append(hits, fmt.Sprintf("%s at %s", f.fault, rep.at(f.at)))
		}
	}
	if len(hits) == 0 {
		return "none"
	}
	return strings.Join(hits, ", ")
}

func orNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

func (rep *chaosReport) errorSuffix(run *chaosRun) string {
	if run.errorText == "" {
		return ""
	}
	return fmt.Sprintf(" (Process reported at %s: %s)", rep.at(run.errorAt), run.errorText)
}

// failedAssertions lists each assertion with violations, with the first.
func (rep *chaosReport) failedAssertions() []string {
	var failed []string
	for _, a := range chaosAssertions {
		if vs := rep.violations[a]; len(vs) > 0 {
			failed = append(failed, fmt.Sprintf("%q: %d violation(s), first: %s", a, len(vs), vs[0]))
		}
	}
	return failed
}

// log writes the report: a summary, the repeated executions by cause, and
// each violation.
func (rep *chaosReport) log(t *testing.T) {
	t.Helper()
	r := rep.r
	pauses := 0
	for _, p := range r.procs {
		pauses += len(p.pauses)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "chaos summary:\n")
	fmt.Fprintf(&b, "  chaos: %d kills, %d pauses of %v, %d outages of %v; %d worker processes in all\n",
		r.kills, pauses, rep.plan.Pause, len(r.outages), rep.plan.Outage, len(r.procs))
	for _, w := range r.outages {
		fmt.Fprintf(&b, "  outage from %s to %s\n", rep.at(w.from), rep.at(w.to))
	}
	fmt.Fprintf(&b, "  tasks: %v; runs of fn: %d; claims that ran no fn: %d; torn log lines: %d\n",
		rep.statuses, rep.runs, rep.unrun, rep.torn)
	fmt.Fprintf(&b, "  runs the task did not keep, by cause:\n    | cause | runs |\n    | --- | --- |\n")
	causes := make([]string, 0, len(rep.causes))
	for c := range rep.causes {
		causes = append(causes, c)
	}
	sort.Slice(causes, func(i, j int) bool { return rep.causes[causes[i]] > rep.causes[causes[j]] })
	for _, c := range causes {
		fmt.Fprintf(&b, "    | %s | %d |\n", c, rep.causes[c])
	}
	fmt.Fprintf(&b, "  assertions:\n")
	for _, a := range chaosAssertions {
		verdict := "held"
		if n := len(rep.violations[a]); n > 0 {
			verdict = fmt.Sprintf("VIOLATED %d times", n)
		}
		fmt.Fprintf(&b, "    %s: %s\n", a, verdict)
	}
	t.Log(b.String())
	for _, l := range rep.repeats {
		t.Log(l)
	}
	for _, f := range rep.findings {
		t.Log("finding: " + f)
	}
	for _, a := range chaosAssertions {
		for _, v := range rep.violations[a] {
			t.Logf("VIOLATION of %q: %s", a, v)
		}
	}
}
