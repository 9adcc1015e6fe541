package scale_test

import "testing"

func testJobsOnceAcrossQueues(t *testing.T, b *backend)      {}
func testPromotionOnce(t *testing.T, b *backend)             {}
func testRecurringDoesNotMultiply(t *testing.T, b *backend)  {}
func testKilledDaemonRecovered(t *testing.T, b *backend)     {}
func testGaugesAgree(t *testing.T, b *backend)               {}
func testMasterRestartUnderLoad(t *testing.T, b *backend)    {}
