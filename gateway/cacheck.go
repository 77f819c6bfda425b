package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/state"
)

// caRecordKey holds the fingerprints of the cluster's CA keys in the cluster's store, so
// that replicas sharing a store cannot run with certificate authorities of their own
// (each data_dir/ca is separate; a replica started on an empty one would make new CAs,
// and users and nodes would be refused by one replica or the other, with nothing saying
// why).
const caRecordKey = "cluster/certificate-authorities"

// caRecord maps a CA type to the fingerprints of every key it trusts (the signing key
// and, during a rotation, the other one).
type caRecord map[string][]string

func caRecordOf(c *ca.Cluster) caRecord {
	r := caRecord{}
	for _, a := range c.Authorities() {
		var fps []string
		for _, k := range a.TrustedKeys() {
			fps = append(fps, ca.Fingerprint(k.Key))
		}
		for _, cert := range a.CACerts() {
			sum := sha256.Sum256(cert.Raw)
			fps = append(fps, "SHA256:"+hex.EncodeToString(sum[:]))
		}
		sort.Strings(fps)
		r[string(a.Type())] = fps
	}
	return r
}

// disjoint lists the CA types whose keys the two records do not share at all (a
// rotation in progress on one replica still shares its old key).
func (r caRecord) disjoint(o caRecord) []string {
	var out []string
	for typ, fps := range r {
		ofps, ok := o[typ]
		if !ok {
			continue
		}
		if !slices.ContainsFunc(fps, func(fp string) bool { return slices.Contains(ofps, fp) }) {
			out = append(out, typ)
		}
	}
	sort.Strings(out)
	return out
}

func readCARecord(ctx context.Context, st state.Store) (caRecord, error) {
	r, _, err := readCARecordItem(ctx, st)
	return r, err
}

// readCARecordItem is readCARecord with the item's revision (0 when there is none), for
// a compare-and-swap.
func readCARecordItem(ctx context.Context, st state.Store) (caRecord, int64, error) {
	it, err := st.Get(ctx, caRecordKey)
	if errors.Is(err, state.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reading the cluster's CA record from the store: %w", err)
	}
	var r caRecord
	if err := json.Unmarshal(it.Value, &r); err != nil {
		return nil, 0, fmt.Errorf("the cluster's CA record in the store is damaged: %w", err)
	}
	return r, it.Revision, nil
}

// checkCADirAgainstStore refuses to create CAs in an empty data_dir/ca when the store
// already names the cluster's CAs: another replica made them, and this one must use
// them, not make its own.
func checkCADirAgainstStore(ctx context.Context, st state.Store, dir string) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil
	}
	r, err := readCARecord(ctx, st)
	if err != nil || r == nil {
		return err
	}
	return fmt.Errorf("%s holds no certificate authorities, but this cluster's store names CAs another replica made (user CA %s): "+
		"replicas of one cluster share its CAs, so copy data_dir/ca from a running replica to %s (cp -a) and start again",
		dir, strings.Join(r["user"], ", "), filepath.Dir(dir)+"/ca")
}

// publishCARecord checks this replica's CAs against the store's record and writes them
// there: at start, a replica whose CAs share no key with the record (of some type) is
// refused; a type the record lacks (an upgrade that added the openssh CA) is added.
// After a rotation (force) the record becomes this replica's.
func publishCARecord(ctx context.Context, st state.Store, c *ca.Cluster, force bool) error {
	// The record is written only over the one read (compare-and-swap; absent: create),
	// so replicas of a new cluster started together on empty data_dirs cannot each find
	// no record and each write their own: one record wins and the others are checked
	// against it on the next attempt.
	for range 8 {
		err := publishCARecordOnce(ctx, st, c, force)
		if !errors.Is(err, state.ErrConflict) && !errors.Is(err, state.ErrAlreadyExists) {
			return err
		}
	}
	return fmt.Errorf("writing the cluster's CA record to the store: %w: still contended", state.ErrConflict)
}

func publishCARecordOnce(ctx context.Context, st state.Store, c *ca.Cluster, force bool) error {
	mine := caRecordOf(c)
	have, rev, err := readCARecordItem(ctx, st)
	if err != nil {
		return err
	}
	if have != nil && !force {
		if bad := mine.disjoint(have); len(bad) > 0 {
			return fmt.Errorf("this replica's %s CA keys (in data_dir/ca) are not the cluster's: another replica sharing the store uses %s %s; "+
				"replicas of one cluster share its CAs: copy data_dir/ca from that replica (cp -a) and start again",
				strings.Join(bad, ", "), bad[0], strings.Join(have[bad[0]], ", "))
		}
		merged := caRecord{}
		for typ, fps := range have {
			merged[typ] = fps
		}
		changed := false
		for typ, fps := range mine {
			if _, ok := have[typ]; !ok {
				merged[typ], changed = fps, true
			}
		}
		if !changed {
			return nil
		}
		mine = merged
	}
	data, err := json.Marshal(mine)
	if err != nil {
		return err
	}
	item := state.Item{Key: caRecordKey, Value: data}
	if force {
		_, err = st.Put(ctx, item)
	} else {
		_, err = st.CompareAndSwap(ctx, state.Item{Key: caRecordKey, Revision: rev}, item)
	}
	if err != nil {
		return fmt.Errorf("writing the cluster's CA record to the store: %w", err)
	}
	return nil
}

// watchCARecord logs an error, once per change of the record, while the store's record
// of the cluster's CAs shares no key of some type with this replica's (another replica
// rotated a CA this one did not follow): one of them refuses what the other signs.
func (g *Gateway) watchCARecord(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	said := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		have, err := readCARecord(ctx, g.store)
		if err != nil || have == nil {
			continue
		}
		bad := caRecordOf(g.auth.CA()).disjoint(have)
		if len(bad) == 0 {
			said = ""
			continue
		}
		if key := fmt.Sprint(bad, have); key != said {
			said = key
		} else {
			continue
		}
		g.log.Error("this replica's CAs are no longer the cluster's: another replica sharing the store rotated them; copy its data_dir/ca here and restart this replica",
			"types", bad, "cluster_keys", have[bad[0]])
	}
}
