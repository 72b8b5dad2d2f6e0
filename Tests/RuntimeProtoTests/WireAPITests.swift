import Foundation
import RuntimeProto
import SwiftProtobuf
import Testing

@Suite("Wire API")
struct WireAPITests {
    @Test("the service keeps the reference's method names, plus the calls this design adds")
    func methodNames() {
        let methods = Dtruntime_V1_Coordinator.Method.descriptors.map(\.fullyQualifiedMethod)
        #expect(
            Set(methods)
                == Set(
                    [
                        "RegisterWorker", "Heartbeat", "RegisterDataset", "GetShardAssignment", "SaveCheckpoint",
                        "LoadCheckpoint", "BarrierSync", "DeregisterWorker", "WorkerSession", "ReportShardProgress",
                        "ReportCheckpointPart", "BarrierStream",
                    ].map { "dtruntime.v1.Coordinator/\($0)" }))
    }

    @Test("messages round-trip through the binary format; fields a reader does not know are kept, not fatal")
    func roundTrip() throws {
        let request = Dtruntime_V1_RegisterWorkerRequest.with {
            $0.workerID = "worker-1"
            $0.host = "localhost"
            $0.port = 50052
            $0.gpuCount = 8
            $0.labels = ["zone": "a"]
            $0.taskID = "job"
        }
        let bytes: [UInt8] = try request.serializedBytes()
        #expect(try Dtruntime_V1_RegisterWorkerRequest(serializedBytes: bytes) == request)

        // A newer client sending field 99 (unknown here) is still understood.
        let extended = bytes + [0x98, 0x06, 0x01]  // field 99, varint 1
        let decoded = try Dtruntime_V1_RegisterWorkerRequest(serializedBytes: extended)
        #expect(decoded.workerID == "worker-1")
        #expect(!decoded.unknownFields.data.isEmpty)
    }

    @Test("negative numbers a client could send stay negative (so the coordinator can reject them)")
    func signedFields() throws {
        let request = Dtruntime_V1_RegisterWorkerRequest.with {
            $0.port = -1
            $0.gpuCount = -5
        }
        let decoded = try Dtruntime_V1_RegisterWorkerRequest(serializedBytes: try request.serializedBytes() as [UInt8])
        #expect(decoded.port == -1 && decoded.gpuCount == -5)
    }
}
