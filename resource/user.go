package resource

// User is a local user of a cluster.
type User struct {
	Kind     string   `yaml:"kind"`
	Version  string   `yaml:"version"`
	Metadata Metadata `yaml:"metadata"`
	Spec     UserSpec `yaml:"spec"`
}

// UserSpec is a user's roles and traits.
type UserSpec struct {
	// Roles are the names of the user's roles.
	Roles []string `yaml:"roles,omitempty"`
	// Traits are the values role templates read, for example {"logins": ["visitor"]}.
	Traits map[string][]string `yaml:"traits,omitempty"`
}

// GetKind returns "user".
func (u *User) GetKind() string { return KindUser }

// GetVersion returns the document's version.
func (u *User) GetVersion() string { return u.Version }

// GetMetadata returns the user's metadata.
func (u *User) GetMetadata() *Metadata { return &u.Metadata }

// Validate checks that every role name is non-empty.
func (u *User) Validate() error {
	if err := checkHeader(KindUser, u.Kind, u.Version, &u.Metadata); err != nil {
		return err
	}
	res := describe(KindUser, u.Metadata.Name)
	for i, r := range u.Spec.Roles {
		if isBlank(r) {
			return fieldErr(res, path{"spec", "roles", i}, "role names must not be empty")
		}
	}
	return nil
}
