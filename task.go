package ddbtrack

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Task is one task's record, as read from DynamoDB or as seen by the
// function that [Tracker.Start] runs.
type Task[S Status] struct {
	// Job and ID name the task; together they are its key.
	Job string
	ID  string
	// Status is the task's status. Status.String() is its name, which is
	// also stored beside the number so that the record reads well in the
	// DynamoDB console.
	Status S
	// StatusName is the name stored with the status, which is what
	// Status.String() returned for the tracker that wrote it. Tools that
	// do not know a job's enum, such as the ddbtrack command, show it.
	StatusName string
	// Attempts counts consecutive attempts that did not succeed. A claim
	// counts the attempt it starts, so inside Start's function Attempts is
	// the number of the current attempt (1 for the first). A success resets
	// it to zero, Reset too.
	Attempts int
	// Fence is the fencing token: it grows by one with every claim. A
	// function can use it in conditions on its own tables so that a worker
	// whose lease was lost cannot overwrite a newer worker's side effects.
	Fence int64
	// CreatedAt, UpdatedAt, StartedAt and SucceededAt are stored as epoch
	// milliseconds. StartedAt is the last claim; SucceededAt the last success.
	// They are zero when the event has not happened.
	CreatedAt, UpdatedAt, StartedAt, SucceededAt time.Time
	// LeaseOwner and LeaseExpiresAt describe the lease of the worker
	// running the task. Both are empty when no worker holds it.
	LeaseOwner     string
	LeaseExpiresAt time.Time
	// ExpiresAt is when DynamoDB's time to live may delete the task:
	// Config.Retention after it succeeded, in whole seconds. It is zero for
	// a task that is kept.
	ExpiresAt time.Time
	// LastError is the message of the latest failure, kept as a top-level
	// string so that query filters such as contains(last_error, "timeout")
	// can reach it. A success clears it.
	LastError string
	// Errors is the history of failures, oldest first, bounded by
	// Config.ErrorHistory.
	Errors []ErrorRecord

	data, output   types.AttributeValue
	dataSet        bool
	outputSet      bool
	leaseToken     string
	abandonedEntry *ErrorRecord
	// claimedFrom is the status the claim found the task in, which a
	// release puts back; maxAttempts is the limit in force for this
	// attempt; outcome is what Start recorded, for Process to report.
	claimedFrom S
	maxAttempts int
	outcome     outcome
}

// ErrorRecord is one failed attempt in a task's error history.
type ErrorRecord struct {
	// Attempt is the number of the attempt that failed, counting from 1.
	Attempt int `json:"attempt"`
	// At is when the failure was recorded.
	At time.Time `json:"at"`
	// Message is the error's text, truncated to 2 KiB.
	Message string `json:"message"`
	// Stack is the goroutine stack for a panic, truncated to 8 KiB, and
	// empty for an ordinary error.
	Stack string `json:"stack,omitempty"`
}

// Bounds on what one error record may hold. With the default history of ten
// records a task's errors stay under 100 KiB, a quarter of DynamoDB's 400 KB
// item limit, so a long run of failures cannot crowd out the task's data.
const (
	maxMessageBytes = 2 << 10
	maxStackBytes   = 8 << 10
)

// IsLocked reports whether a worker holds an unexpired lease on the task at
// time now.
func (t *Task[S]) IsLocked(now time.Time) bool {
	return t.LeaseOwner != "" && now.Before(t.LeaseExpiresAt)
}

// UnmarshalData decodes the task's data into v, which must be a pointer, as
// [attributevalue.Unmarshal] does. It leaves v untouched when the task has
// no data.
func (t *Task[S]) UnmarshalData(v any) error {
	return unmarshalAttr("data", t.data, v)
}

// UnmarshalOutput decodes the output of the task's last success into v.
func (t *Task[S]) UnmarshalOutput(v any) error {
	return unmarshalAttr("output", t.output, v)
}

// SetData replaces the task's data. As in the seed notebook, the new data
// is stored only if the attempt succeeds; a failed attempt leaves the stored
// data as it was, so the next attempt starts from the same input.
//
// SetData marshals v at once with [attributevalue.Marshal], so a value that
// cannot be stored is reported here, while the function can still react.
func (t *Task[S]) SetData(v any) error {
	av, err := marshalAttr("data", v)
	if err != nil {
		return err
	}
	t.data, t.dataSet = av, true
	return nil
}

// SetOutput sets the output stored with the task's success. A success
// without SetOutput removes the output of any earlier success.
func (t *Task[S]) SetOutput(v any) error {
	av, err := marshalAttr("output", v)
	if err != nil {
		return err
	}
	t.output, t.outputSet = av, true
	return nil
}

func unmarshalAttr(what string, av types.AttributeValue, v any) error {
	if av == nil {
		return nil
	}
	if err := attributevalue.Unmarshal(av, v); err != nil {
		return fmt.Errorf("ddbtrack: cannot decode task %s into %T: %w", what, v, err)
	}
	return nil
}

// decodeTask reads a stored item. It decodes by hand rather than through
// attributevalue's reflection because it runs on every claim and every row
// of a query.
func decodeTask[S Status](item map[string]types.AttributeValue) (*Task[S], error) {
	t := &Task[S]{
		Job:            str(item, "job"),
		ID:             str(item, "task_id"),
		Status:         S(num(item, "status")),
		StatusName:     str(item, "status_name"),
		Attempts:       int(num(item, "attempts")),
		Fence:          num(item, "fence"),
		CreatedAt:      millis(item, "created_at"),
		UpdatedAt:      millis(item, "updated_at"),
		StartedAt:      millis(item, "started_at"),
		SucceededAt:    millis(item, "succeeded_at"),
		LeaseOwner:     str(item, "lease_owner"),
		LeaseExpiresAt: millis(item, "lease_expires_at"),
		ExpiresAt:      seconds(item, expiresAttr),
		LastError:      str(item, "last_error"),
		data:           item["data"],
		output:         item["output"],
		leaseToken:     str(item, "lease_token"),
	}
	if l, ok := item["errors"].(*types.AttributeValueMemberL); ok {
		t.Errors = make([]ErrorRecord, 0, len(l.Value))
		for _, e := range l.Value {
			m, ok := e.(*types.AttributeValueMemberM)
			if !ok {
				return nil, fmt.Errorf("ddbtrack: task %q has a malformed error history entry of type %T", t.ID, e)
			}
			t.Errors = append(t.Errors, ErrorRecord{
				Attempt: int(num(m.Value, "attempt")),
				At:      millis(m.Value, "at"),
				Message: str(m.Value, "message"),
				Stack:   str(m.Value, "stack"),
			})
		}
	}
	if t.ID == "" {
		return nil, fmt.Errorf("ddbtrack: item %q has no task_id attribute; is the table shared with another application?", str(item, "pk"))
	}
	return t, nil
}

// encodeErrors encodes an error history for a SET of the whole list.
// Writing the whole list, rather than appending, is what keeps it bounded:
// the write is fenced by the lease token, so no other writer can have
// changed the list since the claim returned it.
func encodeErrors(records []ErrorRecord) types.AttributeValue {
	l := make([]types.AttributeValue, len(records))
	for i, r := range records {
		m := map[string]types.AttributeValue{
			"attempt": numAV(int64(r.Attempt)),
			"at":      numAV(r.At.UnixMilli()),
			"message": &types.AttributeValueMemberS{Value: r.Message},
		}
		if r.Stack != "" {
			m["stack"] = &types.AttributeValueMemberS{Value: r.Stack}
		}
		l[i] = &types.AttributeValueMemberM{Value: m}
	}
	return &types.AttributeValueMemberL{Value: l}
}

// appendBounded appends r to the history, keeping the newest max records.
func appendBounded(history []ErrorRecord, max int, r ...ErrorRecord) []ErrorRecord {
	out := append(append([]ErrorRecord(nil), history...), r...)
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return out
}

// truncate shortens s to at most max bytes without splitting a UTF-8
// sequence, and says how much it cut.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const note = "… (truncated)"
	cut := max - len(note)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + note
}

func str(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func num(item map[string]types.AttributeValue, name string) int64 {
	if v, ok := item[name].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

func millis(item map[string]types.AttributeValue, name string) time.Time {
	if ms := num(item, name); ms != 0 {
		return time.UnixMilli(ms)
	}
	return time.Time{}
}

// seconds reads an epoch-seconds attribute, the unit time to live needs.
func seconds(item map[string]types.AttributeValue, name string) time.Time {
	if s := num(item, name); s != 0 {
		return time.Unix(s, 0)
	}
	return time.Time{}
}

func numAV(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func strAV(s string) types.AttributeValue {
	return &types.AttributeValueMemberS{Value: s}
}

// MarshalJSON writes the task as a readable record: status with its name,
// times in RFC 3339, data and output as plain JSON.
func (t *Task[S]) MarshalJSON() ([]byte, error) {
	type record struct {
		Job            string        `json:"job"`
		ID             string        `json:"id"`
		Status         int           `json:"status"`
		StatusName     string        `json:"status_name"`
		Attempts       int           `json:"attempts"`
		Fence          int64         `json:"fence"`
		Data           any           `json:"data,omitempty"`
		Output         any           `json:"output,omitempty"`
		LastError      string        `json:"last_error,omitempty"`
		Errors         []ErrorRecord `json:"errors,omitempty"`
		CreatedAt      *time.Time    `json:"created_at,omitempty"`
		UpdatedAt      *time.Time    `json:"updated_at,omitempty"`
		StartedAt      *time.Time    `json:"started_at,omitempty"`
		SucceededAt    *time.Time    `json:"succeeded_at,omitempty"`
		LeaseOwner     string        `json:"lease_owner,omitempty"`
		LeaseExpiresAt *time.Time    `json:"lease_expires_at,omitempty"`
		ExpiresAt      *time.Time    `json:"expires_at,omitempty"`
	}
	return json.Marshal(record{
		Job: t.Job, ID: t.ID, Status: int(t.Status), StatusName: statusName[S](int(t.Status)),
		Attempts: t.Attempts, Fence: t.Fence,
		Data: plain(t.data), Output: plain(t.output),
		LastError: t.LastError, Errors: t.Errors,
		CreatedAt: timePtr(t.CreatedAt), UpdatedAt: timePtr(t.UpdatedAt),
		StartedAt: timePtr(t.StartedAt), SucceededAt: timePtr(t.SucceededAt),
		LeaseOwner: t.LeaseOwner, LeaseExpiresAt: timePtr(t.LeaseExpiresAt),
		ExpiresAt: timePtr(t.ExpiresAt),
	})
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// plain converts an attribute value to a value encoding/json writes
// naturally. Numbers stay json.Number so that large integers keep every
// digit, which a float64 would not.
func plain(av types.AttributeValue) any {
	switch v := av.(type) {
	case nil:
		return nil
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return json.Number(v.Value)
	case *types.AttributeValueMemberBOOL:
		return v.Value
	case *types.AttributeValueMemberNULL:
		return nil
	case *types.AttributeValueMemberB:
		return v.Value
	case *types.AttributeValueMemberM:
		m := make(map[string]any, len(v.Value))
		for k, e := range v.Value {
			m[k] = plain(e)
		}
		return m
	case *types.AttributeValueMemberL:
		l := make([]any, len(v.Value))
		for i, e := range v.Value {
			l[i] = plain(e)
		}
		return l
	case *types.AttributeValueMemberSS:
		return v.Value
	case *types.AttributeValueMemberNS:
		l := make([]json.Number, len(v.Value))
		for i, n := range v.Value {
			l[i] = json.Number(n)
		}
		return l
	case *types.AttributeValueMemberBS:
		return v.Value
	}
	return fmt.Sprintf("%T", av)
}
