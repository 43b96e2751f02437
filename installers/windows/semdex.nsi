; Semdex installer for Windows (NSIS 3).
;
;   makensis -DVERSION=0.1.0 -DPAYLOAD=dist\Semdex -DOUTFILE=dist\Semdex-0.1.0-setup.exe
;            [-DICON=build\semdex.ico] installers\windows\semdex.nsi
;
; PAYLOAD is PyInstaller's onedir folder: Semdex.exe (GUI), semdex-cli.exe (CLI), _internal\.
; Installs for the current user by default (no UAC prompt for standard users); an administrator
; may choose "all users" on the mode page or pass /AllUsers. Silent: /S. No file associations.

Unicode true
SetCompressor /SOLID lzma
ManifestDPIAware true

!ifndef VERSION
  !error "VERSION is required: makensis -DVERSION=x.y.z ..."
!endif
!ifndef PAYLOAD
  !error "PAYLOAD is required: the PyInstaller onedir folder (-DPAYLOAD=dist\Semdex)"
!endif
!ifndef OUTFILE
  !error "OUTFILE is required: the installer to write (-DOUTFILE=dist\Semdex-setup.exe)"
!endif

!define UNINST_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\Semdex"

Name "Semdex"
OutFile "${OUTFILE}"
BrandingText "Semdex ${VERSION}"
ShowInstDetails show
ShowUninstDetails show

; --- per-user by default, per-machine on request (stock MultiUser.nsh) ---------------------
!define MULTIUSER_EXECUTIONLEVEL Highest
!define MULTIUSER_INSTALLMODE_DEFAULT_CURRENTUSER
!define MULTIUSER_INSTALLMODE_COMMANDLINE
!define MULTIUSER_MUI
; Per-user: %LOCALAPPDATA%\Programs\Semdex; per-machine: $PROGRAMFILES64\Semdex.
!define MULTIUSER_USE_PROGRAMFILES64
!define MULTIUSER_INSTALLMODE_INSTDIR "Semdex"
; A reinstall/upgrade reuses the previous folder and mode.
!define MULTIUSER_INSTALLMODE_INSTDIR_REGISTRY_KEY "${UNINST_KEY}"
!define MULTIUSER_INSTALLMODE_INSTDIR_REGISTRY_VALUENAME "InstallLocation"
!define MULTIUSER_INSTALLMODE_DEFAULT_REGISTRY_KEY "${UNINST_KEY}"
!define MULTIUSER_INSTALLMODE_DEFAULT_REGISTRY_VALUENAME "InstallLocation"
!include MultiUser.nsh

!include MUI2.nsh
!include LogicLib.nsh
!include x64.nsh
!include WinVer.nsh
!include FileFunc.nsh

; --- pages ----------------------------------------------------------------------------------
!ifdef ICON
  !define MUI_ICON "${ICON}"
  !define MUI_UNICON "${ICON}"
!endif
!define MUI_ABORTWARNING
!define MUI_COMPONENTSPAGE_NODESC ; both components pages

!insertmacro MUI_PAGE_WELCOME
!insertmacro MULTIUSER_PAGE_INSTALLMODE
!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!define MUI_FINISHPAGE_RUN
!define MUI_FINISHPAGE_RUN_TEXT "Run Semdex"
!define MUI_FINISHPAGE_RUN_FUNCTION RunSemdex
!insertmacro MUI_PAGE_FINISH

!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_COMPONENTS
!insertmacro MUI_UNPAGE_INSTFILES

!insertmacro MUI_LANGUAGE "English"

; --- installer ------------------------------------------------------------------------------
Function .onInit
  ${IfNot} ${RunningX64}
  ${OrIfNot} ${AtLeastWin10}
    MessageBox MB_OK|MB_ICONSTOP "Semdex needs 64-bit Windows 10 or newer." /SD IDOK
    Abort
  ${EndIf}
  SetRegView 64
  !insertmacro MULTIUSER_INIT
FunctionEnd

Function RunSemdex
  ; Started through Explorer so Semdex does not inherit the installer's elevation.
  Exec '"$WINDIR\explorer.exe" "$INSTDIR\Semdex.exe"'
FunctionEnd

Section "Semdex (required)" SecMain
  SectionIn RO
  SetOutPath "$INSTDIR"
  ; Remove the previous version's libraries first so no stale files remain.
  RMDir /r "$INSTDIR\_internal"
  File /r "${PAYLOAD}\*.*"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  CreateShortcut "$SMPROGRAMS\Semdex.lnk" "$INSTDIR\Semdex.exe"

  ; Apps & features entry (SHCTX: HKCU per-user, HKLM per-machine).
  WriteRegStr SHCTX "${UNINST_KEY}" "DisplayName" "Semdex"
  WriteRegStr SHCTX "${UNINST_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr SHCTX "${UNINST_KEY}" "DisplayIcon" "$INSTDIR\Semdex.exe,0"
  WriteRegStr SHCTX "${UNINST_KEY}" "Publisher" "Semdex"
  WriteRegStr SHCTX "${UNINST_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr SHCTX "${UNINST_KEY}" "UninstallString" "$\"$INSTDIR\uninstall.exe$\""
  WriteRegStr SHCTX "${UNINST_KEY}" "QuietUninstallString" "$\"$INSTDIR\uninstall.exe$\" /S"
  WriteRegDWORD SHCTX "${UNINST_KEY}" "NoModify" 1
  WriteRegDWORD SHCTX "${UNINST_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  IntFmt $0 "0x%08X" $0
  WriteRegDWORD SHCTX "${UNINST_KEY}" "EstimatedSize" $0
SectionEnd

Section /o "Desktop shortcut" SecDesktop
  CreateShortcut "$DESKTOP\Semdex.lnk" "$INSTDIR\Semdex.exe"
SectionEnd

; --- uninstaller ----------------------------------------------------------------------------
Var UnDir

Function un.onInit
  SetRegView 64
  StrCpy $UnDir $INSTDIR ; the folder this uninstaller belongs to
  !insertmacro MULTIUSER_UNINIT
  ; Both a per-user and a per-machine copy may exist: act on the one that names this folder.
  ReadRegStr $0 HKLM "${UNINST_KEY}" "InstallLocation"
  ${If} $0 == $UnDir
    ${If} $MultiUser.Privileges == "Admin"
    ${OrIf} $MultiUser.Privileges == "Power"
      Call un.MultiUser.InstallMode.AllUsers
    ${Else}
      MessageBox MB_OK|MB_ICONSTOP \
        "Semdex was installed for all users; removing it needs an administrator." /SD IDOK
      Abort
    ${EndIf}
  ${Else}
    Call un.MultiUser.InstallMode.CurrentUser
  ${EndIf}
  StrCpy $INSTDIR $UnDir
FunctionEnd

Section "un.Semdex (program files, shortcuts)" UnSecMain
  SectionIn RO
  Delete "$SMPROGRAMS\Semdex.lnk"
  Delete "$DESKTOP\Semdex.lnk"
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\Semdex.exe"
  Delete "$INSTDIR\semdex-cli.exe"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR" ; only if empty: never removes what else is in a folder the person chose
  DeleteRegKey SHCTX "${UNINST_KEY}"
SectionEnd

; Unticked by default (/o): the index and settings stay unless the person asks.
Section /o "un.Also delete my Semdex index and settings" UnSecData
  ; platformdirs on Windows (desktop/config.py, state.py, logs.py, starter.py), all in one:
  ;   %LOCALAPPDATA%\semdex                       config.json, window.ini, state.json, index
  ;   %LOCALAPPDATA%\semdex\Logs                  logs
  ;   %LOCALAPPDATA%\semdex\semdex\Cache\models   converted models
  ; Folders moved with SEMDEX_* variables or the data_dir setting are left alone.
  ; This data is the current user's even after a per-machine install.
  SetShellVarContext current
  RMDir /r "$LOCALAPPDATA\semdex"
  ${If} $MultiUser.InstallMode == "AllUsers"
    SetShellVarContext all
  ${EndIf}
SectionEnd
