import ArgumentParser
import FaceSocialServer
import Foundation

@main
struct FaceSocialCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "facesocial",
        abstract: "FaceSocial: a self-hosted face-analysis API server.",
        subcommands: [ServeCommand.self, MigrateCommand.self, KeysCommand.self, ModelsCommand.self, BenchCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}
