package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tetherproject/tether/gateway/config"
)

func TestConfigurePrintsTheSample(t *testing.T) {
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"configure"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if out.String() != config.Sample || !strings.Contains(out.String(), "# ") {
		t.Fatalf("configure printed:\n%s", out.String())
	}
}

func TestStartRefusesABadConfig(t *testing.T) {
	cmd := rootCommand()
	cmd.SetArgs([]string{"start", "-c", "/nonexistent/tether.yaml"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "configuration /nonexistent/tether.yaml: no such file") {
		t.Fatalf("got %v", err)
	}
}
