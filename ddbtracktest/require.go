package ddbtracktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ddbtrack/ddbtrack"
)

// Want is what [RequireTask] expects of a task. Status and Attempts are
// always checked, because a test that knows how a task ended knows both;
// the other fields only when set.
type Want[S ddbtrack.Status] struct {
	// Status is the task's status.
	Status S

	// Attempts is Task.Attempts: the attempts in a row that did not
	// succeed. It is 0 after a success, and MaxAttempts for a task that
	// failed its way to Ignored.
	Attempts int

	// Output, when not nil, is the output of the task's last success. The
	// stored output is decoded into a new value of Output's type, as
	// Task.UnmarshalOutput would decode it into your variable, and the two
	// are compared as JSON: so a struct matches the fields it declares, and
	// map[string]any{"rows": 3} matches a stored number 3.
	Output any

	// LastError, when not empty, must be part of Task.LastError, the message
	// of the latest failure.
	LastError string
}

// RequireTask reads the task with a strongly consistent read and fails the
// test, listing each difference, unless it is as want describes. It returns
// the task for further checks. Call it from the test's goroutine, as any
// function that may call t.FailNow.
func RequireTask[S ddbtrack.Status](tb testing.TB, tr *ddbtrack.Tracker[S], id string, want Want[S]) *ddbtrack.Task[S] {
	tb.Helper()
	task, err := tr.Get(tb.Context(), id)
	switch {
	case errors.Is(err, ddbtrack.ErrTaskNotFound):
		tb.Fatalf("ddbtracktest: task %q of job %q does not exist; want it %s", id, tr.Config().Job, statusText(want.Status))
	case err != nil:
		tb.Fatalf("ddbtracktest: read task %q: %v", id, err)
	}
	if diff := diffTask(task, want); diff != "" {
		tb.Fatalf("ddbtracktest: task %q of job %q is not as wanted:\n%s", id, tr.Config().Job, diff)
	}
	return task
}

// diffTask lists the differences between task and want, one per line, or
// returns "" when there are none.
func diffTask[S ddbtrack.Status](task *ddbtrack.Task[S], want Want[S]) string {
	var b strings.Builder
	line := func(field, format string, args ...any) {
		if field != "" {
			field += ":"
		}
		fmt.Fprintf(&b, "\t%-11s "+format+"\n", append([]any{field}, args...)...)
	}
	if task.Status != want.Status {
		line("status", "got %s, want %s", statusText(task.Status), statusText(want.Status))
	}
	if task.Attempts != want.Attempts {
		line("attempts", "got %d, want %d", task.Attempts, want.Attempts)
	}
	if want.Output != nil {
		got, wanted, err := outputs(task, want.Output)
		switch {
		case err != nil:
			line("output", "%v", err)
		case got != wanted:
			line("output", "got  %s", got)
			line("", "want %s", wanted)
		}
	}
	switch {
	case want.LastError != "" && !strings.Contains(task.LastError, want.LastError):
		line("last error", "got %q, want it to contain %q", task.LastError, want.LastError)
	case b.Len() > 0 && task.LastError != "":
		// Why a task failed is the first question when it is not as
		// wanted.
		line("last error", "%q", task.LastError)
	}
	return b.String()
}

// outputs renders the task's output, decoded into a new value of want's
// type, and want itself, both as JSON.
func outputs[S ddbtrack.Status](task *ddbtrack.Task[S], want any) (got, wanted string, err error) {
	var raw any
	if err := task.UnmarshalOutput(&raw); err != nil {
		return "", "", err
	}
	wanted, err = toJSON(want)
	if err != nil {
		return "", "", err
	}
	if raw == nil {
		return "(no output)", wanted, nil
	}
	v := reflect.New(reflect.TypeOf(want))
	if err := task.UnmarshalOutput(v.Interface()); err != nil {
		return "", "", fmt.Errorf("got an output that does not decode into %T: %v", want, err)
	}
	got, err = toJSON(v.Elem().Interface())
	return got, wanted, err
}

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("cannot compare outputs of type %T as JSON: %v", v, err)
	}
	return string(b), nil
}

// statusText names a status with its number, since two values of a job's
// enum may share a name, or have none.
func statusText[S ddbtrack.Status](s S) string {
	return fmt.Sprintf("%s (%d)", s.String(), int(s))
}
