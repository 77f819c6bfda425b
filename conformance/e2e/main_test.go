package e2e

import (
	"os"
	"testing"

	"github.com/tetherproject/tether/internal/testproc"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testproc.Cleanup()
	os.Exit(code)
}
