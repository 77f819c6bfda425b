package web

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tetherproject/tether/resource"
)

// adminCall is one admin API call as tetherctl's client makes it (names path-escaped).
func adminCall(t *testing.T, c *http.Client, method, u string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func TestEveryNameThatCanBeCreatedCanBeGotUpdatedAndRemoved(t *testing.T) {
	f := start(t, "leaf.example.com")
	c := f.client(clientCert(t, f.auth.CA(), true))
	base := "https://" + f.addr + "/v1/admin/resources"
	getNames := func(kind, name string) (int, []string) {
		status, body := adminCall(t, c, http.MethodGet, base+"/"+url.PathEscape(kind)+"/"+url.PathEscape(name), "")
		var out ResourcesResponse
		_ = json.Unmarshal([]byte(body), &out)
		var names []string
		for _, d := range out.Resources {
			rs, err := resource.Parse([]byte(d), "get")
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, rs[0].GetMetadata().Name)
		}
		return status, names
	}
	t.Run("names_a_URL_would_clean_away_are_refused", func(t *testing.T) {
		for _, n := range []string{".", ".."} {
			doc := fmt.Sprintf("kind: role\nversion: v5\nmetadata: {name: %q}\nspec: {}\n", n)
			if status, body := adminCall(t, c, http.MethodPost, base, doc); status != http.StatusBadRequest || !strings.Contains(body, "must not be") {
				t.Fatalf("%q: HTTP %d %s", n, status, body)
			}
		}
	})
	for _, n := range []string{"a.b", "a/b", "a/../b", "a%2Fb", "%", "a?b", "a#b", "ü", `a\b`, "...", "a;b", "*", "a+b"} {
		t.Run(strings.NewReplacer("/", "_", "?", "Q", "#", "H").Replace(n), func(t *testing.T) {
			doc := fmt.Sprintf("kind: role\nversion: v5\nmetadata: {name: %q}\nspec: {}\n", n)
			if status, body := adminCall(t, c, http.MethodPost, base, doc); status != http.StatusOK {
				t.Fatalf("create: HTTP %d %s", status, body)
			}
			if status, names := getNames("role", n); status != http.StatusOK || len(names) != 1 || names[0] != n {
				t.Fatalf("get: HTTP %d %q", status, names)
			}
			if status, body := adminCall(t, c, http.MethodPost, base+"?force=true", doc); status != http.StatusOK {
				t.Fatalf("update: HTTP %d %s", status, body)
			}
			if status, body := adminCall(t, c, http.MethodDelete, base+"/role/"+url.PathEscape(n), ""); status != http.StatusOK {
				t.Fatalf("rm: HTTP %d %s", status, body)
			}
			if status, _ := getNames("role", n); status != http.StatusNotFound {
				t.Fatalf("get after rm: HTTP %d", status)
			}
		})
	}
	t.Run("cluster_names_in_any_case_and_with_a_trailing_dot", func(t *testing.T) {
		doc := "kind: trusted_cluster\nversion: v2\nmetadata: {name: ROOT.Example.com.}\nspec: {enabled: false, token: abc, tunnel_addr: 'a:1', web_proxy_addr: 'a:1'}\n"
		if status, body := adminCall(t, c, http.MethodPost, base, doc); status != http.StatusOK {
			t.Fatalf("create: HTTP %d %s", status, body)
		}
		for _, n := range []string{"ROOT.Example.com.", "root.example.com", "root.example.com."} {
			if status, names := getNames("trusted_cluster", n); status != http.StatusOK || len(names) != 1 || names[0] != "root.example.com" {
				t.Fatalf("get %q: HTTP %d %q", n, status, names)
			}
		}
		if status, body := adminCall(t, c, http.MethodPost, base+"?force=true", strings.Replace(doc, "ROOT.Example.com.", "root.example.com", 1)); status != http.StatusOK || !strings.Contains(body, "updated") {
			t.Fatalf("update: HTTP %d %s", status, body)
		}
		if status, body := adminCall(t, c, http.MethodDelete, base+"/trusted_cluster/"+url.PathEscape("Root.Example.Com."), ""); status != http.StatusOK {
			t.Fatalf("rm: HTTP %d %s", status, body)
		}
		if status, _ := getNames("trusted_cluster", "root.example.com"); status != http.StatusNotFound {
			t.Fatalf("get after rm: HTTP %d", status)
		}
	})
	t.Run("the_clusters_own_name_in_another_form_is_refused_as_a_trust", func(t *testing.T) {
		for _, n := range []string{"LEAF.example.com", "leaf.example.com."} {
			doc := fmt.Sprintf("kind: trusted_cluster\nversion: v2\nmetadata: {name: %q}\nspec: {enabled: false, token: abc, tunnel_addr: 'a:1', web_proxy_addr: 'a:1'}\n", n)
			if status, body := adminCall(t, c, http.MethodPost, base, doc); status != http.StatusBadRequest || !strings.Contains(body, "own name") {
				t.Fatalf("%q: HTTP %d %s", n, status, body)
			}
		}
	})
}
