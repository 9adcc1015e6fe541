package redisstore

// slotOf is the Redis Cluster hash slot of the bucket key's Redis key: the
// CRC16 (XMODEM) of its hash tag, which is the whole bucket key.
func slotOf(bucketKey string) int {
	var crc uint16
	for i := 0; i < len(bucketKey); i++ {
		crc ^= uint16(bucketKey[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
