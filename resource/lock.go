package resource

import "time"

// Lock denies access to everything its target matches until it expires.
type Lock struct {
	Kind     string   `yaml:"kind"`
	Version  string   `yaml:"version"`
	Metadata Metadata `yaml:"metadata"`
	Spec     LockSpec `yaml:"spec"`
}

// LockSpec is what a lock applies to and why.
type LockSpec struct {
	Target LockTarget `yaml:"target"`
	// Message is shown to the locked-out user.
	Message string `yaml:"message,omitempty"`
	// Expires, when set, ends the lock.
	Expires *time.Time `yaml:"expires,omitempty"`
}

// LabelReplicatedFrom marks a lock a root replicated to this cluster (a leaf): its value
// is the root's name, which is also the lock's remote_cluster target. Such locks are
// replaced as a whole by the root's next push and removed with the trust; their role
// target names a role of the root (bundles ship it as root_role).
const LabelReplicatedFrom = "tether.dev/replicated-from"

// LockTarget selects what is locked; every set field must match. At least one is required.
type LockTarget struct {
	User          string `yaml:"user,omitempty"`
	Role          string `yaml:"role,omitempty"`
	Login         string `yaml:"login,omitempty"`
	Node          string `yaml:"node,omitempty"`
	RemoteCluster string `yaml:"remote_cluster,omitempty"`
}

// IsEmpty reports whether no target field is set.
func (t LockTarget) IsEmpty() bool { return t == LockTarget{} }

// GetKind returns "lock".
func (l *Lock) GetKind() string { return KindLock }

// GetVersion returns the document's version.
func (l *Lock) GetVersion() string { return l.Version }

// GetMetadata returns the lock's metadata.
func (l *Lock) GetMetadata() *Metadata { return &l.Metadata }

// Validate checks that the lock has a target.
func (l *Lock) Validate() error {
	if err := checkHeader(KindLock, l.Kind, l.Version, &l.Metadata); err != nil {
		return err
	}
	if l.Spec.Target.IsEmpty() {
		return fieldErr(describe(KindLock, l.Metadata.Name), path{"spec", "target"},
			"at least one of user, role, login, node or remote_cluster is required")
	}
	return nil
}
