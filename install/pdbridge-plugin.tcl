# pdbridge-plugin.tcl - a Pd GUI plugin: when Pd's GUI starts (menu, terminal, double-click on a
# patch), start the pdbridge hub that [pdbridge.*] objects talk to, and keep it while this GUI runs.
# Pd loads every *-plugin.tcl in a folder on its search path; install/install.sh puts this file in
# the registered pdbridge folder with the launcher's path filled in, the deken package as it is.
# See pdbridge/autostart.py and docs/install.md (why a plugin, not a systemd socket unit).

namespace eval ::pdbridge_plugin {
    variable launcher {@LAUNCHER@}
}

proc ::pdbridge_plugin::find_launcher {} {
    variable launcher
    set candidates [list $launcher [file join $::env(HOME) .local bin pdbridge]]
    set onpath [auto_execok pdbridge]
    if {$onpath ne ""} {lappend candidates [lindex $onpath 0]}
    foreach candidate $candidates {
        if {$candidate ne "" && [file executable $candidate]} {return $candidate}
    }
    return ""
}

proc ::pdbridge_plugin::start {} {
    set found [::pdbridge_plugin::find_launcher]
    if {$found eq ""} {
        ::pdwindow::post "pdbridge: the abstractions are here, but the Python side is not installed,\
so \[pdbridge.*\] objects will find no hub. Install it with install/install.sh from\
the pdbridge sources (README.txt in the pdbridge folder says how).\n"
        return
    }
    if {[catch {exec $found autostart --gui-pid [pid] >& /dev/null &} err]} {
        ::pdwindow::error "pdbridge: could not start the hub with $found: $err\n"
    } else {
        ::pdwindow::debug "pdbridge: hub kept running with this GUI by $found\n"
    }
}

::pdbridge_plugin::start
