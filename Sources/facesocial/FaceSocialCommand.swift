import ArgumentParser
import FaceSocialServer
import Foundation

@main
struct FaceSocialCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "facesocial",
        abstract: "FaceSocial: a self-hosted face-analysis API server.",
        subcommands: [
            ServeCommand.self, MigrateCommand.self, ModelsCommand.self, BenchCommand.self, UsersCommand.self,
            KeysCommand.self, TuneCommand.self,
        ],
        defaultSubcommand: ServeCommand.self
    )
}
