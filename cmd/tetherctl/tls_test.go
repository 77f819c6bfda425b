package main

import "crypto/tls"

// insecureTLS is for test requests to public endpoints whose certificate is not the point.
func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } //nolint:gosec // tests only
