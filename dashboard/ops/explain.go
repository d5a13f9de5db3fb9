package ops

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/aws/smithy-go"

	"github.com/ddbtrack/ddbtrack"
)

// Explanation is an error told to an operator: what went wrong, what to
// do about it, and the error's own text where that adds something.
type Explanation struct {
	// Problem says what went wrong, in an operator's words.
	Problem string
	// Fix says what to do about it; it is "" when there is nothing better
	// to say than the problem.
	Fix string
	// Detail is the error's own text, such as the SDK's, when Problem does
	// not already say all of it. It is made safe with Visible, newlines
	// kept.
	Detail string
}

// String gives the explanation on one line, with the detail on the next,
// as the command prints it.
func (e Explanation) String() string {
	s := e.Problem
	if e.Fix != "" {
		s += ": " + e.Fix
	}
	if e.Detail != "" {
		s += "\n  DynamoDB said: " + e.Detail
	}
	return s
}

// Explain says what went wrong in an operator's words, with what to do
// about it. The library's own messages suit Go code ("create it first with
// Tracker.Create"), and the SDK's name exceptions
// ("ResourceNotFoundException"); someone at a shell or in a browser needs to
// know which setting to check. The fixes name the ddbtrack command's flags,
// which `ddbtrack serve` shares.
//
// Every value the error carries from DynamoDB (status names, lease owners)
// is passed through [Visible], and task IDs are quoted, so the explanation
// is safe to print on a terminal.
func Explain(err error) Explanation { return explain(err, "") }

// Explain is [Explain] for an error of this job, which can then name the
// table.
func (j *Job[S]) Explain(err error) Explanation { return explain(err, j.Table()) }

func explain(err error, table string) Explanation {
	raw := Visible(strings.TrimPrefix(err.Error(), "ddbtrack: "), true)
	if e, ok := explainTask(err, raw); ok {
		return e
	}
	theTable := "the table"
	if table != "" {
		theTable = fmt.Sprintf("table %q", table)
	}
	if e, ok := explainService(err, raw, theTable); ok {
		return e
	}
	return Explanation{Problem: raw}
}

// explainTask explains the refusals of operations on tasks, if err is one.
func explainTask(err error, raw string) (Explanation, bool) {
	var (
		te *ddbtrack.TaskError
		se *StatusError
	)
	switch {
	case errors.As(err, &te):
		return explainTaskError(te), true
	case errors.As(err, &se):
		e := Explanation{Problem: fmt.Sprintf("task %q is %s, not %s", se.TaskID, Visible(se.Status, false), se.Want)}
		switch se.Op {
		case "due-now":
			e.Fix = "due-now makes only those due; `ddbtrack reset` runs a task again from any status"
		case "cancel":
			e.Fix = "cancel only those, or leave out --status to cancel any task that waits or runs"
		default:
			e.Fix = "requeue moves only those; `ddbtrack reset` runs a task again from any status"
		}
		return e, true
	case errors.Is(err, ErrAlreadyDue):
		return Explanation{Problem: raw, Fix: "a worker starts it when it next looks for work"}, true
	case errors.Is(err, ErrChanged):
		return Explanation{Problem: raw}, true
	case errors.Is(err, ddbtrack.ErrTaskLocked):
		// A bulk operation's refusal, which names how many it left.
		return Explanation{
			Problem: strings.TrimPrefix(raw, "task is locked by another worker: "),
			Fix:     "run it again once their work is done or their leases have expired",
		}, true
	}
	return Explanation{}, false
}

// explainTaskError explains the library's refusal of an operation on one
// task.
func explainTaskError(te *ddbtrack.TaskError) Explanation {
	switch {
	case errors.Is(te.Err, ddbtrack.ErrTaskNotFound):
		return Explanation{
			Problem: fmt.Sprintf("task %q not found in job %q", te.TaskID, te.Job),
			Fix:     "check the ID, and --job and --table; `ddbtrack ls --id-contains TEXT` finds IDs",
		}
	case errors.Is(te.Err, ddbtrack.ErrTaskLocked):
		// TaskError.Attempts counts the attempt in progress too, so it is
		// not a count of failures here: a task on its first try has 1.
		return Explanation{
			Problem: fmt.Sprintf("task %q is %s and worker %s holds its lease until %s",
				te.TaskID, Visible(te.StatusName, false), Visible(te.LeaseOwner, false), FormatTime(te.LeaseExpiresAt)),
			Fix: "wait for the worker to finish, or for the lease to expire",
		}
	case te.Op == "cancel" && errors.Is(te.Err, ddbtrack.ErrTaskSucceeded):
		return Explanation{
			Problem: fmt.Sprintf("task %q already succeeded (it is %s), so there is nothing to cancel", te.TaskID, Visible(te.StatusName, false)),
			Fix:     "a succeeded task does not run again unless it is reset; `ddbtrack delete` removes it if it should not be there at all",
		}
	case te.Op == "cancel" && errors.Is(te.Err, ddbtrack.ErrTaskIgnored):
		return Explanation{
			Problem: fmt.Sprintf("task %q is %s already, cancelled or out of attempts, so there is nothing to cancel", te.TaskID, Visible(te.StatusName, false)),
			Fix:     "it does not run again unless it is requeued or reset; `ddbtrack show` says which",
		}
	}
	p := fmt.Sprintf("cannot %s task %q: %s", te.Op, te.TaskID, strings.TrimPrefix(te.Err.Error(), "ddbtrack: "))
	if te.StatusName != "" {
		p += fmt.Sprintf(" (it is %s)", Visible(te.StatusName, false))
	}
	return Explanation{Problem: p}
}

// explainService explains errors of DynamoDB and of the way to it, if err
// is one.
func explainService(err error, raw, theTable string) (Explanation, bool) {
	var (
		api smithy.APIError
		op  *net.OpError
	)
	e := Explanation{Detail: raw}
	switch {
	case IsTableMissing(err):
		e.Problem = theTable + " does not exist at this endpoint and region"
		e.Fix = "check --table, --region and --endpoint-url, or create it with `ddbtrack create-table`"
	case errors.As(err, &api) && api.ErrorCode() == "ValidationException" && strings.Contains(api.ErrorMessage(), "index"):
		e.Problem = fmt.Sprintf("%s has no index %s, so it was not made for ddbtrack", theTable, "status-index")
		e.Fix = "check --table, or create a table for ddbtrack with `ddbtrack create-table --table NEW`"
	case errors.As(err, &api) && isCredentialsCode(api.ErrorCode()):
		e.Problem = "DynamoDB refused the credentials"
		e.Fix = "check AWS_PROFILE or --profile, and that the credentials have not expired (aws sso login, or new keys)"
	case errors.As(err, &api) && isThrottleCode(api.ErrorCode()):
		e.Problem = "DynamoDB is throttling the table"
		e.Fix = "try again in a minute, and prefer narrower filters (--since, --status) on large jobs"
	case strings.Contains(err.Error(), "failed to retrieve credentials"):
		e.Problem = "no AWS credentials were found"
		e.Fix = "set AWS_PROFILE or pass --profile; for a local server, pass --endpoint-url http://127.0.0.1:PORT"
	case errors.As(err, &op) && op.Op == "dial":
		e.Problem = "DynamoDB cannot be reached"
		e.Fix = "check --endpoint-url (or AWS_ENDPOINT_URL_DYNAMODB), --region and the network"
	case errors.Is(err, context.DeadlineExceeded):
		e.Problem = "DynamoDB did not answer in time"
		e.Fix = "check the network and --endpoint-url, then try again"
	default:
		return Explanation{}, false
	}
	return e, true
}

func isCredentialsCode(code string) bool {
	switch code {
	case "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
		"AccessDeniedException", "MissingAuthenticationTokenException", "IncompleteSignature":
		return true
	}
	return false
}

func isThrottleCode(code string) bool {
	switch code {
	case "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded":
		return true
	}
	return false
}
