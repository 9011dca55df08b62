import Testing
@testable import DmirrorDevice
