package ops

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"
)

// A page cursor from the library names the exact query it belongs to,
// including its time bounds and filter values. An operator's "--since 6h"
// or "stuck" is relative to now, so page two, read a minute later, would be
// a different query and its cursor refused. The command and the dashboard
// therefore wrap the library's cursor with the time the first page was read,
// and read every later page as of that time.

type cursorJSON struct {
	Now    int64  `json:"now"`
	Cursor string `json:"c"`
}

// EncodeCursor wraps a library cursor with the time its query was read at.
// It returns "" for "", the end of the results.
func EncodeCursor(now time.Time, cursor string) string {
	if cursor == "" {
		return ""
	}
	b, _ := json.Marshal(cursorJSON{Now: now.UnixMilli(), Cursor: cursor}) // Strings and numbers always encode.
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor unwraps a cursor made by EncodeCursor. For "" it returns
// the zero time and "", meaning the first page, read as of now.
func DecodeCursor(s string) (now time.Time, cursor string, err error) {
	if s == "" {
		return time.Time{}, "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c cursorJSON
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.Cursor == "" || c.Now <= 0 {
		return time.Time{}, "", errors.New("the cursor is damaged: pass the one the previous page printed, unchanged, or leave it out to start again")
	}
	return time.UnixMilli(c.Now), c.Cursor, nil
}
