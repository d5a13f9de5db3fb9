package ops

import (
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbtrack/ddbtrack"
)

// IsTableMissing reports whether err says the table does not exist.
func IsTableMissing(err error) bool {
	var rnf *types.ResourceNotFoundException
	return errors.As(err, &rnf)
}

// IsLocked reports whether err refuses a task that a worker holds.
func IsLocked(err error) bool { return errors.Is(err, ddbtrack.ErrTaskLocked) }

// IsNotFound reports whether err says a task does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ddbtrack.ErrTaskNotFound) }

// IsBadInput reports whether err refuses what the operator typed: a task ID
// DynamoDB cannot store, options the library refuses, or a cursor that is
// not the query's.
func IsBadInput(err error) bool {
	return errors.Is(err, ddbtrack.ErrInvalidOption)
}

// IsInvalidCursor reports whether err is the library's refusal of a cursor
// that does not belong to the query.
func IsInvalidCursor(err error) bool {
	var oe *ddbtrack.OptionError
	return errors.As(err, &oe) && oe.Field == "cursor"
}
