package cron

// The zone database is embedded (about 450 KB of binary) so that a zone
// resolves on a machine without zoneinfo (a scratch or distroless image).
import _ "time/tzdata"
