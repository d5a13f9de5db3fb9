package ddbtrack

import (
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// This file is the stored format of a task: the name of every attribute,
// and how an item is read back into a Task. The expressions of lock.go
// name the same attributes as #name.

// The attributes of a task's item. The partition key, the status index's
// keys and due_at are derived from the others; lock.go writes them together.
const (
	attrPK             = "pk"               // job#taskID, the table's key
	attrJob            = "job"              //
	attrTaskID         = "task_id"          //
	attrStatus         = "status"           // the job's status number
	attrStatusName     = "status_name"      // its String(), for people and tools
	attrStatusKey      = "status_key"       // the status index's partition key: job#status#shard
	attrOrderKey       = "order_key"        // the status index's sort key: due_at#taskID
	attrDueAt          = "due_at"           // epoch ms; see Task.DueAt
	attrAttempts       = "attempts"         // consecutive attempts that did not succeed
	attrFence          = "fence"            // claims so far
	attrCreatedAt      = "created_at"       //
	attrUpdatedAt      = "updated_at"       // last status change
	attrStartedAt      = "started_at"       // last claim
	attrSucceededAt    = "succeeded_at"     //
	attrLeaseOwner     = "lease_owner"      //
	attrLeaseToken     = "lease_token"      // the claim's secret; every later write of the attempt is fenced by it
	attrLeaseExpiresAt = "lease_expires_at" //
	attrClaimedFrom    = "claimed_from"     // the status the claim found, which a release restores
	attrClaimedDue     = "claimed_due"      // and the due time it found, to tell how long the task waited
	attrAbandonedOwner = "abandoned_owner"  // the lease a takeover claim replaced
	attrAbandonedUntil = "abandoned_until"  // and when it had expired
	attrOutcomes       = "outcomes"         // the fences of the last attempts that wrote an outcome
	attrCreateToken    = "create_token"     // the Create call that wrote the item
	attrCancelledAt    = "cancelled_at"     //
	attrCancelReason   = "cancel_reason"    //
	attrExpiresAt      = "expires_at"       // epoch seconds, for time to live; see Config.Retention
	attrLastError      = "last_error"       //
	attrErrors         = "errors"           // the bounded error history
	attrData           = "data"             //
	attrOutput         = "output"           //
)

// Bounds on what one error record may hold. With the default history of ten
// records a task's errors stay under 100 KiB, a quarter of DynamoDB's 400 KB
// item limit, so a long run of failures cannot crowd out the task's data.
const (
	maxMessageBytes = 2 << 10
	maxStackBytes   = 8 << 10
)

// decodeTask reads a stored item. It decodes by hand rather than through
// attributevalue's reflection because it runs on every claim and every row
// of a query. An item read through a slim status index lacks data, output
// and the error history, which are then left empty.
func decodeTask[S Status](item map[string]types.AttributeValue) (*Task[S], error) {
	t := &Task[S]{
		Job:            str(item, attrJob),
		ID:             str(item, attrTaskID),
		Status:         S(num(item, attrStatus)),
		StatusName:     str(item, attrStatusName),
		Attempts:       int(num(item, attrAttempts)),
		Fence:          num(item, attrFence),
		DueAt:          millis(item, attrDueAt),
		CreatedAt:      millis(item, attrCreatedAt),
		UpdatedAt:      millis(item, attrUpdatedAt),
		StartedAt:      millis(item, attrStartedAt),
		SucceededAt:    millis(item, attrSucceededAt),
		LeaseOwner:     str(item, attrLeaseOwner),
		LeaseExpiresAt: millis(item, attrLeaseExpiresAt),
		ExpiresAt:      seconds(item, attrExpiresAt),
		CancelledAt:    millis(item, attrCancelledAt),
		CancelReason:   str(item, attrCancelReason),
		LastError:      str(item, attrLastError),
		data:           item[attrData],
		output:         item[attrOutput],
	}
	if t.ID == "" {
		return nil, fmt.Errorf("ddbtrack: item %q has no %s attribute; is the table shared with another application?", str(item, attrPK), attrTaskID)
	}
	if l, ok := item[attrErrors].(*types.AttributeValueMemberL); ok {
		t.Errors = make([]ErrorRecord, 0, len(l.Value))
		for _, e := range l.Value {
			m, ok := e.(*types.AttributeValueMemberM)
			if !ok {
				return nil, fmt.Errorf("ddbtrack: task %q has a malformed error history entry of type %T", t.ID, e)
			}
			t.Errors = append(t.Errors, ErrorRecord{
				Attempt: int(num(m.Value, "attempt")),
				Fence:   num(m.Value, "fence"),
				At:      millis(m.Value, "at"),
				Message: str(m.Value, "message"),
				Stack:   str(m.Value, "stack"),
			})
		}
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
			"fence":   numAV(r.Fence),
			"at":      numAV(r.At.UnixMilli()),
			"message": strAV(r.Message),
		}
		if r.Stack != "" {
			m["stack"] = strAV(r.Stack)
		}
		l[i] = &types.AttributeValueMemberM{Value: m}
	}
	return &types.AttributeValueMemberL{Value: l}
}

// appendBounded appends records to the history, keeping the newest limit.
func appendBounded(history []ErrorRecord, limit int, records ...ErrorRecord) []ErrorRecord {
	out := append(append([]ErrorRecord(nil), history...), records...)
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

// truncate shortens s to at most limit bytes without splitting a UTF-8
// sequence, and says that it cut.
func truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	const note = "… (truncated)"
	cut := limit - len(note)
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
		return time.UnixMilli(ms).UTC()
	}
	return time.Time{}
}

// whole returns t as it is stored: whole milliseconds, in UTC, as every
// time read back from an item is.
func whole(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

// seconds reads an epoch-seconds attribute, the unit time to live needs.
func seconds(item map[string]types.AttributeValue, name string) time.Time {
	if s := num(item, name); s != 0 {
		return time.Unix(s, 0).UTC()
	}
	return time.Time{}
}

// recentOutcomes is how many outcomes an item remembers, by their
// attempts' fences, so that a write whose answer was lost recognises its
// own effect even after later attempts have come and gone.
const recentOutcomes = 8

// outcomes returns the fences an item remembers outcomes of.
func outcomes(item map[string]types.AttributeValue) []int64 {
	ns, _ := item[attrOutcomes].(*types.AttributeValueMemberNS)
	if ns == nil {
		return nil
	}
	fences := make([]int64, 0, len(ns.Value))
	for _, v := range ns.Value {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			fences = append(fences, n)
		}
	}
	return fences
}

// withOutcome returns the set of fences to store once the attempt with
// fence has written its outcome: the newest recentOutcomes of them.
// Fences only grow, so the newest are the largest.
func withOutcome(fences []int64, fence int64) types.AttributeValue {
	all := append(slices.Clone(fences), fence)
	slices.Sort(all)
	all = slices.Compact(all)
	if len(all) > recentOutcomes {
		all = all[len(all)-recentOutcomes:]
	}
	ns := make([]string, len(all))
	for i, n := range all {
		ns[i] = strconv.FormatInt(n, 10)
	}
	return &types.AttributeValueMemberNS{Value: ns}
}

func numAV(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func strAV(s string) types.AttributeValue {
	return &types.AttributeValueMemberS{Value: s}
}
