package cron

// The zone database is embedded (+411 KB of binary, measured) so that a
// zone resolves on a machine without zoneinfo (a scratch or distroless
// image).
import _ "time/tzdata"
