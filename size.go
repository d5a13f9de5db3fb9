package ddbtrack

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// itemSize is the size of an item as DynamoDB bills it and limits it: the
// UTF-8 length of each attribute's name plus the size of its value. The
// limits of a transaction (txn.go) are checked with it, and
// TestIndexWriteUnits computes write units with it, checked against
// dynalite's.
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name) + valueSize(v)
	}
	return n
}

// valueSize is the size of one value: a string's or binary's bytes; a
// number's by numberSize; for a list, 3 bytes plus each element's size and
// a byte per element; for a map, 3 bytes plus each entry's name and value
// and a byte per entry; 1 byte for a boolean or null. These are DynamoDB's
// documented rules, and the ones dynalite computes its units with.
func valueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return numberSize(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		return sizeOfAll(v.Value, func(s string) int { return len(s) })
	case *types.AttributeValueMemberNS:
		return sizeOfAll(v.Value, numberSize)
	case *types.AttributeValueMemberBS:
		return sizeOfAll(v.Value, func(b []byte) int { return len(b) })
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		return 3 + len(v.Value) + itemSize(v.Value)
	}
	return 1 // A type DynamoDB does not have yet; counted as the smallest.
}

// numberSize is the size of a number: a byte of exponent, a byte per two
// significant digits, and one more when they do not pair up with the
// decimal point (DynamoDB stores base-100 digits), and a byte for a
// negative sign. An epoch millisecond takes up to 8 bytes.
func numberSize(s string) int {
	unsigned := strings.TrimLeft(s, "-+")
	intPart, frac, _ := strings.Cut(unsigned, ".")
	digits := strings.Trim(intPart+frac, "0")
	if digits == "" {
		return 1
	}
	// exp is the power of ten of the first significant digit.
	exp := len(strings.TrimLeft(intPart, "0")) - 1
	if exp < 0 {
		exp = -(len(frac) - len(strings.TrimLeft(frac, "0"))) - 1
	}
	n := 1 + (len(digits)+1)/2
	if len(digits)%2 == 0 && exp%2 == 0 {
		n++
	}
	if strings.HasPrefix(s, "-") {
		n++
	}
	return n
}

// sizeOfAll returns the sum of the sizes of a set's members.
func sizeOfAll[T any](members []T, size func(T) int) int {
	n := 0
	for _, m := range members {
		n += size(m)
	}
	return n
}
