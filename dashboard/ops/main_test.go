package ops_test

import (
	"testing"

	"github.com/ddbtrack/ddbtrack/internal/ddbtest"
)

func TestMain(m *testing.M) { ddbtest.Main(m) }
