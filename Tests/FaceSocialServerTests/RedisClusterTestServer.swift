import Foundation

/// A real six-node Redis Cluster (three masters, a replica each) of Debian's redis-server on free
/// loopback ports, made with `redis-cli --cluster create` and stopped by the test that needs it.
/// Optionally with a password and TLS on every link (clients, the cluster bus and replication).
final class RedisClusterTestServer: @unchecked Sendable {
    let ports: [Int]
    let password: String?
    let tls: TLSFiles?
    let folder: URL
    private var processes: [Int: Process] = [:]

    struct TLSFiles {
        let ca: String
        let certificate: String
        let key: String
    }

    init(password: String? = nil, tls: Bool = false, nodeTimeoutMs: Int = 5000) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("redis-cluster-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var ports: [Int] = []
        while ports.count < 6 {
            let port = try RedisTestServer.freePort()
            // The cluster bus listens at port + 10000, which must be free too.
            if port < 55_000, !ports.contains(port) { ports.append(port) }
        }
        self.ports = ports
        self.password = password
        self.tls = tls ? try Self.makeCertificates(in: folder) : nil
        for port in ports { try start(port, nodeTimeoutMs: nodeTimeoutMs) }
        var create = ["--cluster", "create"] + ports.map { "127.0.0.1:\($0)" }
        create += ["--cluster-replicas", "1", "--cluster-yes"]
        let output = try cli(create)
        guard output.contains("All 16384 slots covered") else { throw ClusterError.createFailed(output) }
        try waitUntilHealthy()
    }

    /// `REDIS_CLUSTER_NODES` naming two seeds (a client must find the rest).
    var seeds: String {
        let scheme = tls == nil ? "redis://" : "rediss://"
        let credentials = password.map { ":\($0)@" } ?? ""
        return scheme + credentials + ports.prefix(2).map { "127.0.0.1:\($0)" }.joined(separator: ",")
    }

    private func start(_ port: Int, nodeTimeoutMs: Int) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        var arguments = [
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", folder.path,
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes-\(port).conf",
            "--cluster-node-timeout", String(nodeTimeoutMs), "--enable-debug-command", "local",
            "--logfile", folder.appendingPathComponent("redis-\(port).log").path,
        ]
        if let tls {
            arguments += [
                "--port", "0", "--tls-port", String(port), "--tls-cluster", "yes", "--tls-replication", "yes",
                "--tls-cert-file", tls.certificate, "--tls-key-file", tls.key, "--tls-ca-cert-file", tls.ca,
                "--tls-auth-clients", "no",
            ]
        } else {
            arguments += ["--port", String(port)]
        }
        if let password { arguments += ["--requirepass", password, "--masterauth", password] }
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        processes[port] = process
        for _ in 0..<200 {
            if RedisTestServer.canConnect(port) { return }
            usleep(20_000)
        }
        throw ClusterError.didNotStart(port)
    }

    /// Runs redis-cli with this cluster's credentials and TLS; its output.
    @discardableResult
    func cli(_ arguments: [String], port: Int? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
        var prefix: [String] = []
        if let port { prefix += ["-h", "127.0.0.1", "-p", String(port)] }
        if let password { prefix += ["-a", password, "--no-auth-warning"] }
        if let tls { prefix += ["--tls", "--cacert", tls.ca] }
        process.arguments = prefix + arguments
        return try Self.output(of: process).text
    }

    /// Runs the process to its end: its exit status and what it printed. Reaped with waitpid,
    /// because waitUntilExit() can spin forever inside Swift concurrency on Linux.
    static func output(of process: Process) throws -> (status: Int32, text: String) {
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        var status: Int32 = 0
        for _ in 0..<3000 {
            let reaped = waitpid(process.processIdentifier, &status, WNOHANG)
            if reaped == process.processIdentifier || (reaped == -1 && errno == ECHILD) { break }
            usleep(10_000)
        }
        return ((status >> 8) & 0xFF, String(decoding: data, as: UTF8.self))
    }

    struct Node {
        let id: String
        let port: Int
        let isMaster: Bool
        let masterID: String?
        let slots: [ClosedRange<Int>]
    }

    /// The cluster as one live node sees it (`CLUSTER NODES`), failed nodes left out.
    func nodes() throws -> [Node] {
        for port in ports where processes[port]?.isRunning == true && !stopped.contains(port) {
            let text = try cli(["CLUSTER", "NODES"], port: port)
            let nodes = text.split(separator: "\n").compactMap { line -> Node? in
                let fields = line.split(separator: " ").map(String.init)
                guard fields.count >= 8, !fields[2].contains("fail"), let colon = fields[1].firstIndex(of: ":")
                else { return nil }
                let portText = fields[1][fields[1].index(after: colon)...].prefix { $0.isNumber }
                guard let port = Int(portText) else { return nil }
                let slots = fields.dropFirst(8).compactMap { range -> ClosedRange<Int>? in
                    let ends = range.split(separator: "-").compactMap { Int($0) }
                    if ends.count == 2 { return ends[0]...ends[1] }
                    if ends.count == 1, !range.hasPrefix("[") { return ends[0]...ends[0] }
                    return nil
                }
                return Node(
                    id: fields[0], port: port, isMaster: fields[2].contains("master"),
                    masterID: fields[3] == "-" ? nil : fields[3], slots: slots)
            }
            if !nodes.isEmpty { return nodes }
        }
        throw ClusterError.noLiveNode
    }

    func masters() throws -> [Node] { try nodes().filter { $0.isMaster && !$0.slots.isEmpty } }

    private var stopped: Set<Int> = []

    func kill(_ port: Int) {
        guard let process = processes[port], process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        reap(process)
        stopped.insert(port)
    }

    func pause(_ port: Int) {
        guard let process = processes[port] else { return }
        Foundation.kill(process.processIdentifier, SIGSTOP)
        stopped.insert(port)
    }

    func resume(_ port: Int) {
        guard let process = processes[port] else { return }
        Foundation.kill(process.processIdentifier, SIGCONT)
        stopped.remove(port)
    }

    /// True once every live node reports `cluster_state:ok` and every live replica has finished its
    /// first sync (a replica that never synced does not take over a lost master).
    func isHealthy() -> Bool {
        ports.filter { !stopped.contains($0) && processes[$0]?.isRunning == true }.allSatisfy {
            guard ((try? cli(["CLUSTER", "INFO"], port: $0)) ?? "").contains("cluster_state:ok") else { return false }
            let replication = (try? cli(["INFO", "replication"], port: $0)) ?? ""
            return replication.contains("role:master") || replication.contains("master_link_status:up")
        }
    }

    func waitUntilHealthy(seconds: Double = 60) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if isHealthy() { return }
            usleep(100_000)
        }
        throw ClusterError.notHealthy
    }

    func stop() {
        for (port, process) in processes {
            if stopped.contains(port) { Foundation.kill(process.processIdentifier, SIGCONT) }
            if process.isRunning {
                Foundation.kill(process.processIdentifier, SIGKILL)
                reap(process)
            }
        }
        processes.removeAll()
    }

    /// Reaped by hand: waitUntilExit() can spin forever inside Swift concurrency on Linux.
    private func reap(_ process: Process) {
        let pid = process.processIdentifier
        for _ in 0..<250 {
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid || (reaped == -1 && errno == ECHILD) { return }
            usleep(20_000)
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: folder)
    }

    /// A CA and a server certificate for 127.0.0.1, made with openssl for this cluster only.
    static func makeCertificates(in folder: URL) throws -> TLSFiles {
        let ca = folder.appendingPathComponent("ca.pem").path
        let caKey = folder.appendingPathComponent("ca.key").path
        let key = folder.appendingPathComponent("server.key").path
        let request = folder.appendingPathComponent("server.csr").path
        let certificate = folder.appendingPathComponent("server.pem").path
        let extensions = folder.appendingPathComponent("san.cnf").path
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: extensions, atomically: true, encoding: .utf8)
        for arguments in [
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", "/CN=FaceSocial test CA", "-keyout", caKey, "-out", ca,
            ],
            [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
                "-keyout", key, "-out", request,
            ],
            [
                "x509", "-req", "-in", request, "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-days", "2",
                "-extfile", extensions, "-out", certificate,
            ],
        ] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = arguments
            guard try output(of: process).status == 0 else { throw ClusterError.certificates }
        }
        return TLSFiles(ca: ca, certificate: certificate, key: key)
    }

    enum ClusterError: Error {
        case didNotStart(Int)
        case createFailed(String)
        case notHealthy
        case noLiveNode
        case certificates
    }
}
