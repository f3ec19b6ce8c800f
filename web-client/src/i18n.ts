// Every UI string lives here, in Vietnamese (default) and English.
import type { ErrorCode, Role } from './protocol';

export type Lang = 'vi' | 'en';
export const LANGS: readonly Lang[] = ['vi', 'en'];
const STORAGE_KEY = 'openhearing.lang';

const vi = {
  'app.title': 'OpenHearing — Phiên tòa trực tuyến',
  'app.brand': 'OpenHearing',
  'lang.vi': 'Tiếng Việt',
  'lang.en': 'English',
  'lang.label': 'Ngôn ngữ',

  'prejoin.heading': 'Chuẩn bị tham gia phiên tòa',
  'prejoin.case': 'Vụ án',
  'prejoin.name': 'Họ và tên',
  'prejoin.role': 'Tư cách tham gia',
  'prejoin.site': 'Điểm cầu',
  'prejoin.camera': 'Camera',
  'prejoin.mic': 'Micrô',
  'prejoin.micLevel': 'Mức âm thanh micrô',
  'prejoin.join': 'Tham gia phiên tòa',
  'prejoin.joining': 'Đang kết nối…',
  'prejoin.observerNote': 'Bạn tham gia với tư cách người quan sát: chỉ xem và nghe, không bật camera hay micrô.',
  'prejoin.rules': 'Giữ camera và micrô luôn bật, chỉ phát biểu khi được chủ tọa mời. Không tự ghi âm, ghi hình hay phát trực tiếp phiên tòa.',
  'prejoin.noDevices': 'Không tìm thấy camera hoặc micrô.',
  'prejoin.mediaDenied': 'Không thể dùng camera/micrô: {detail}. Hãy cho phép trình duyệt truy cập rồi tải lại trang.',
  'prejoin.insecure': 'Trình duyệt chặn camera/micrô vì trang không được mở bằng https://. Hãy dùng đúng đường dẫn tòa án đã gửi.',
  'prejoin.defaultDevice': 'Thiết bị mặc định',
  'prejoin.device': 'Thiết bị {n}',
  'prejoin.expiresAt': 'Đường dẫn có hiệu lực đến {time}',

  'link.missing': 'Đường dẫn tham gia không có mã truy cập. Hãy mở đúng đường dẫn mà tòa án đã gửi cho bạn.',
  'link.malformed': 'Mã truy cập trong đường dẫn bị hỏng hoặc không đầy đủ. Hãy sao chép lại toàn bộ đường dẫn tòa án đã gửi.',
  'link.expired': 'Đường dẫn tham gia đã hết hạn. Hãy liên hệ thư ký phiên tòa để được cấp đường dẫn mới.',
  'link.wrong_hearing': 'Mã truy cập không thuộc phiên tòa này. Hãy mở đúng đường dẫn tòa án đã gửi.',
  'link.noHearing': 'Đường dẫn không đúng dạng /join/<mã phiên tòa>.',

  'status.connecting': 'Đang kết nối…',
  'status.connected': 'Đã kết nối',
  'status.media': 'Đang thiết lập âm thanh, hình ảnh…',
  'status.reconnecting': 'Mất kết nối, đang thử lại ({n})…',
  'status.lost': 'Mất kết nối',
  'status.left': 'Đã rời phiên tòa',

  'hearing.you': 'Bạn',
  'hearing.notConnected': 'Chưa kết nối',
  'hearing.micOn': 'Micrô bật',
  'hearing.micOff': 'Micrô tắt',
  'hearing.camOn': 'Camera bật',
  'hearing.camOff': 'Camera tắt',
  'hearing.watchOnly': 'Chỉ xem',
  'hearing.participants': 'Người tham gia: {n}',
  'hearing.noOthers': 'Chưa có người tham gia khác kết nối.',

  'controls.micMute': 'Tắt micrô',
  'controls.micUnmute': 'Bật micrô',
  'controls.camOff': 'Tắt camera',
  'controls.camOn': 'Bật camera',
  'controls.leave': 'Rời phiên tòa',

  'left.heading': 'Bạn đã rời phiên tòa',
  'left.body': 'Nếu rời nhầm hoặc được mời vào lại, hãy bấm “Tham gia lại”.',
  'left.rejoin': 'Tham gia lại',

  'lost.heading': 'Mất kết nối với phiên tòa',
  'lost.body': 'Kết nối mạng bị gián đoạn. Hãy báo thư ký phiên tòa hoặc cán bộ tại điểm cầu, rồi bấm “Kết nối lại”.',
  'lost.reconnect': 'Kết nối lại',

  'error.heading': 'Không thể tham gia phiên tòa',
  'error.generic': 'Đã xảy ra lỗi: {message}',
  'error.unsupported_version': 'Phiên bản trang web không tương thích với máy chủ. Hãy tải lại trang (Ctrl+F5).',
  'error.token_missing': 'Thiếu mã truy cập. Hãy mở đúng đường dẫn tòa án đã gửi.',
  'error.token_malformed': 'Mã truy cập bị hỏng. Hãy sao chép lại toàn bộ đường dẫn.',
  'error.token_invalid': 'Mã truy cập không hợp lệ (không do máy chủ này cấp).',
  'error.token_expired': 'Đường dẫn tham gia đã hết hạn. Hãy liên hệ thư ký phiên tòa.',
  'error.token_wrong_hearing': 'Mã truy cập không thuộc phiên tòa này.',
  'error.hearing_not_found': 'Không tìm thấy phiên tòa (có thể đã kết thúc hoặc bị hủy).',
  'error.participant_unknown': 'Bạn không còn trong danh sách người tham gia, hoặc đường dẫn đã bị thu hồi.',
  'error.join_timeout': 'Máy chủ không nhận được yêu cầu tham gia kịp thời.',
  'error.not_joined': 'Lỗi giao thức: chưa tham gia phiên tòa.',
  'error.already_joined': 'Lỗi giao thức: đã tham gia rồi.',
  'error.malformed_message': 'Lỗi giao thức: tin nhắn không hợp lệ.',
  'error.unknown_message_type': 'Lỗi giao thức: loại tin nhắn không xác định.',
  'error.message_too_large': 'Lỗi giao thức: tin nhắn quá lớn.',
  'error.binary_not_supported': 'Lỗi giao thức: không hỗ trợ dữ liệu nhị phân.',
  'error.rate_limited': 'Thiết bị gửi quá nhiều yêu cầu nên bị ngắt tạm thời. Hãy đợi một lát rồi kết nối lại.',
  'error.invalid_sdp': 'Không thiết lập được âm thanh/hình ảnh (SDP không hợp lệ).',
  'error.invalid_candidate': 'Không thiết lập được đường truyền mạng (ICE).',
  'error.no_offer_pending': 'Lỗi đồng bộ kết nối (không có đề nghị nào đang chờ).',
  'error.negotiation_conflict': 'Xung đột khi thiết lập kết nối; đang thử lại.',
  'error.negotiation_timeout': 'Trình duyệt không trả lời máy chủ kịp thời; đang kết nối lại.',
  'error.publish_not_allowed': 'Tư cách tham gia của bạn không được phát âm thanh, hình ảnh; bạn chỉ xem và nghe.',
  'error.replaced': 'Bạn đã tham gia phiên tòa từ một thiết bị hoặc thẻ trình duyệt khác; kết nối này đã đóng.',
  'error.permission_denied': 'Tư cách tham gia của bạn không được phép thực hiện thao tác này.',
  'error.invalid_transition': 'Không thể chuyển phiên tòa sang trạng thái đó từ trạng thái hiện tại.',
  'error.reason_required': 'Cần nhập lý do (khi hoãn phiên tòa, cần cả ngày mở lại).',
  'error.hearing_locked': 'Phiên tòa đang khóa: không thể cho thêm người vào. Hãy mở khóa trước.',
  'error.hearing_closed': 'Phiên tòa đã kết thúc; đường dẫn tham gia không còn hiệu lực.',
  'error.admission_denied': 'Tòa án không cho phép bạn vào phiên tòa này.',
  'error.removed': 'Tòa án đã mời bạn ra khỏi phiên tòa; đường dẫn của bạn không còn hiệu lực.',
  'error.link_revoked': 'Đường dẫn tham gia này đã bị thu hồi. Hãy liên hệ thư ký phiên tòa để được cấp đường dẫn mới.',
  'error.unknown_participant': 'Người được chọn không thuộc phiên tòa này.',
  'error.not_applicable': 'Thao tác này không áp dụng cho người đó lúc này.',
  'error.server_shutdown': 'Máy chủ đang khởi động lại. Hãy đợi một lát rồi kết nối lại.',
  'error.internal': 'Máy chủ gặp lỗi nội bộ: {message}',

  'role.presiding_judge': 'Chủ tọa phiên tòa',
  'role.judge': 'Thẩm phán',
  'role.assessor': 'Hội thẩm nhân dân',
  'role.clerk': 'Thư ký phiên tòa',
  'role.prosecutor': 'Kiểm sát viên',
  'role.defendant': 'Bị cáo',
  'role.defence_counsel': 'Người bào chữa',
  'role.victim': 'Bị hại',
  'role.litigant': 'Đương sự',
  'role.representative': 'Người đại diện',
  'role.witness': 'Người làm chứng',
  'role.expert': 'Người giám định',
  'role.interpreter': 'Người phiên dịch',
  'role.detention_officer': 'Cán bộ cơ sở giam giữ',
  'role.observer': 'Người quan sát',

  'site.central': 'Điểm cầu trung tâm',
  'site.detention': 'Cơ sở giam giữ',
  'site.office': 'Văn phòng',
  'site.court': 'Tòa án khác',
  'site.remote': 'Điểm cầu khác',

  'state.label': 'Trạng thái phiên tòa',
  'state.scheduled': 'Phiên tòa chưa bắt đầu',
  'state.open': 'Phiên tòa đã mở, chuẩn bị xét xử',
  'state.in_session': 'Phiên tòa đang xét xử',
  'state.suspended': 'Phiên tòa tạm ngừng',
  'state.adjourned': 'Phiên tòa hoãn',
  'state.closed': 'Phiên tòa đã kết thúc',
  'state.adjournedTo': 'Mở lại vào {date}',
  'state.scheduledAt': 'Dự kiến bắt đầu: {date}',
  'state.waitMedia': 'Vui lòng chờ: âm thanh, hình ảnh sẽ bắt đầu khi chủ tọa mở phiên tòa.',
  'state.locked': 'Phiên tòa đã khóa: không nhận thêm người vào.',
  'state.floor': 'Đang phát biểu: {name}',

  'conn.offline': 'Chưa kết nối',
  'conn.connecting': 'Đang kết nối',
  'conn.connected': 'Đã kết nối',
  'conn.unstable': 'Kết nối chập chờn',

  'lobby.heading': 'Bạn đang ở phòng chờ',
  'lobby.body': 'Chủ tọa hoặc thư ký phiên tòa sẽ cho bạn vào phiên tòa. Hãy giữ trang này mở; camera của bạn chưa được truyền đi.',
  'lobby.bodyWitness': 'Bạn sẽ được mời vào phiên tòa khi đến lượt. Hãy giữ trang này mở; camera và micrô của bạn chưa được truyền đi.',
  'lobby.since': 'từ {time} ({n} phút)',
  'lobby.title': 'Phòng chờ ({n})',
  'lobby.empty': 'Không có ai đang chờ.',
  'lobby.admit': 'Cho vào',
  'lobby.admitAll': 'Cho tất cả vào',
  'lobby.deny': 'Từ chối',
  'lobby.callIn': 'Mời vào',

  'console.heading': 'Điều khiển phiên tòa',
  'console.participants': 'Người tham gia theo điểm cầu',
  'console.mute': 'Tắt micrô',
  'console.requestUnmute': 'Đề nghị bật micrô',
  'console.spotlight': 'Cho phát biểu',
  'console.unspotlight': 'Thôi phát biểu',
  'console.dismiss': 'Mời ra phòng chờ',
  'console.remove': 'Mời ra khỏi phiên tòa',
  'console.lock': 'Khóa phiên tòa',
  'console.unlock': 'Mở khóa phiên tòa',
  'console.muteAll': 'Tắt micrô tất cả (trừ Hội đồng xét xử)',
  'console.reason': 'Lý do',
  'console.reasonPlaceholder': 'Ví dụ: mất kết nối với trại tạm giam',
  'console.adjournDate': 'Ngày mở lại',
  'console.needReason': 'Hãy nhập lý do.',
  'console.needDate': 'Hãy chọn ngày mở lại.',
  'console.open': 'Mở phiên tòa',
  'console.start': 'Bắt đầu xét xử',
  'console.suspend': 'Tạm ngừng',
  'console.resume': 'Tiếp tục',
  'console.adjourn': 'Hoãn phiên tòa',
  'console.close': 'Kết thúc phiên tòa',
  'console.inLobby': 'Ở phòng chờ',
  'console.removed': 'Đã bị mời ra',
  'console.mutedByCourt': 'Bị tắt micrô',
  'console.you': 'bạn',

  'confirm.remove': 'Mời {name} ra khỏi phiên tòa? Đường dẫn của người này sẽ không còn hiệu lực.',
  'confirm.close': 'Kết thúc phiên tòa? Mọi người sẽ bị ngắt kết nối và không thể vào lại.',
  'confirm.reason': 'Lý do (không bắt buộc)',
  'confirm.yes': 'Đồng ý',
  'confirm.no': 'Hủy',

  'unmute.prompt': 'Chủ tọa đề nghị bạn bật micrô để phát biểu.',
  'unmute.accept': 'Bật micrô',
  'unmute.decline': 'Không bật',

  'controls.mutedByCourt': 'Micrô bị chủ tọa tắt',
  'hearing.mutedByCourt': 'Bị chủ tọa tắt micrô',
  'hearing.floor': 'Đang phát biểu',

  'final.hearing_closed': 'Phiên tòa đã kết thúc',
  'final.admission_denied': 'Không được vào phiên tòa',
  'final.removed': 'Bạn đã bị mời ra khỏi phiên tòa',
  'final.link_revoked': 'Đường dẫn đã bị thu hồi',
  'final.body': 'Bạn có thể đóng trang này.',
  'final.reason': 'Lý do: {reason}',
};

export type MessageKey = keyof typeof vi;

const en: Record<MessageKey, string> = {
  'app.title': 'OpenHearing — Online court hearing',
  'app.brand': 'OpenHearing',
  'lang.vi': 'Tiếng Việt',
  'lang.en': 'English',
  'lang.label': 'Language',

  'prejoin.heading': 'Get ready to join the hearing',
  'prejoin.case': 'Case',
  'prejoin.name': 'Name',
  'prejoin.role': 'Taking part as',
  'prejoin.site': 'Site',
  'prejoin.camera': 'Camera',
  'prejoin.mic': 'Microphone',
  'prejoin.micLevel': 'Microphone level',
  'prejoin.join': 'Join the hearing',
  'prejoin.joining': 'Connecting…',
  'prejoin.observerNote': 'You take part as an observer: you watch and listen only; no camera or microphone is used.',
  'prejoin.rules': 'Keep your camera and microphone on and speak only when the presiding judge invites you. Do not record or livestream the hearing.',
  'prejoin.noDevices': 'No camera or microphone found.',
  'prejoin.mediaDenied': 'Cannot use the camera/microphone: {detail}. Allow access in the browser and reload the page.',
  'prejoin.insecure': 'The browser blocks the camera/microphone because the page was not opened over https://. Use the exact link the court sent you.',
  'prejoin.defaultDevice': 'Default device',
  'prejoin.device': 'Device {n}',
  'prejoin.expiresAt': 'This link is valid until {time}',

  'link.missing': 'The join link has no access code. Open the exact link the court sent you.',
  'link.malformed': 'The access code in the link is damaged or incomplete. Copy the whole link the court sent you again.',
  'link.expired': 'The join link has expired. Ask the court clerk for a new link.',
  'link.wrong_hearing': 'The access code belongs to another hearing. Open the exact link the court sent you.',
  'link.noHearing': 'The link is not of the form /join/<hearing id>.',

  'status.connecting': 'Connecting…',
  'status.connected': 'Connected',
  'status.media': 'Setting up audio and video…',
  'status.reconnecting': 'Connection lost, retrying ({n})…',
  'status.lost': 'Connection lost',
  'status.left': 'Left the hearing',

  'hearing.you': 'You',
  'hearing.notConnected': 'Not connected',
  'hearing.micOn': 'Microphone on',
  'hearing.micOff': 'Microphone off',
  'hearing.camOn': 'Camera on',
  'hearing.camOff': 'Camera off',
  'hearing.watchOnly': 'Watching only',
  'hearing.participants': 'Participants: {n}',
  'hearing.noOthers': 'No other participant has connected yet.',

  'controls.micMute': 'Mute microphone',
  'controls.micUnmute': 'Unmute microphone',
  'controls.camOff': 'Turn camera off',
  'controls.camOn': 'Turn camera on',
  'controls.leave': 'Leave the hearing',

  'left.heading': 'You left the hearing',
  'left.body': 'If you left by mistake or are invited back, press “Rejoin”.',
  'left.rejoin': 'Rejoin',

  'lost.heading': 'Connection to the hearing lost',
  'lost.body': 'The network connection was interrupted. Tell the court clerk or the officer at your site, then press “Reconnect”.',
  'lost.reconnect': 'Reconnect',

  'error.heading': 'Cannot join the hearing',
  'error.generic': 'An error occurred: {message}',
  'error.unsupported_version': 'This page version does not match the server. Reload the page (Ctrl+F5).',
  'error.token_missing': 'The access code is missing. Open the exact link the court sent you.',
  'error.token_malformed': 'The access code is damaged. Copy the whole link again.',
  'error.token_invalid': 'The access code is not valid (not issued by this server).',
  'error.token_expired': 'The join link has expired. Contact the court clerk.',
  'error.token_wrong_hearing': 'The access code belongs to another hearing.',
  'error.hearing_not_found': 'The hearing was not found (it may have ended or been cancelled).',
  'error.participant_unknown': 'You are no longer on the participant list, or your link was revoked.',
  'error.join_timeout': 'The server did not receive the join request in time.',
  'error.not_joined': 'Protocol error: not joined yet.',
  'error.already_joined': 'Protocol error: already joined.',
  'error.malformed_message': 'Protocol error: invalid message.',
  'error.unknown_message_type': 'Protocol error: unknown message type.',
  'error.message_too_large': 'Protocol error: message too large.',
  'error.binary_not_supported': 'Protocol error: binary data is not supported.',
  'error.rate_limited': 'This device sent too many requests and was disconnected for a while. Wait a moment, then reconnect.',
  'error.invalid_sdp': 'Audio/video could not be set up (invalid SDP).',
  'error.invalid_candidate': 'The network path could not be set up (ICE).',
  'error.no_offer_pending': 'Connection sync error (no offer pending).',
  'error.negotiation_conflict': 'Connection setup conflict; retrying.',
  'error.negotiation_timeout': 'The browser did not answer the server in time; reconnecting.',
  'error.publish_not_allowed': 'Your role may not send audio or video; you watch and listen only.',
  'error.replaced': 'You joined this hearing from another device or browser tab; this connection was closed.',
  'error.permission_denied': 'Your role may not do this.',
  'error.invalid_transition': 'The hearing cannot move to that state from its current state.',
  'error.reason_required': 'A reason is required (and, to adjourn, the new date).',
  'error.hearing_locked': 'The hearing is locked: nobody can be admitted. Unlock it first.',
  'error.hearing_closed': 'The hearing is closed; its join links no longer work.',
  'error.admission_denied': 'The court refused your admission to this hearing.',
  'error.removed': 'The court removed you from the hearing; your link no longer works.',
  'error.link_revoked': 'This join link was revoked. Ask the court clerk for a new one.',
  'error.unknown_participant': 'The selected person is not part of this hearing.',
  'error.not_applicable': 'This does not apply to that person now.',
  'error.server_shutdown': 'The server is restarting. Wait a moment, then reconnect.',
  'error.internal': 'The server had an internal error: {message}',

  'role.presiding_judge': 'Presiding judge',
  'role.judge': 'Judge',
  'role.assessor': "People's assessor",
  'role.clerk': 'Court clerk',
  'role.prosecutor': 'Prosecutor',
  'role.defendant': 'Defendant',
  'role.defence_counsel': 'Defence counsel',
  'role.victim': 'Victim',
  'role.litigant': 'Litigant',
  'role.representative': 'Representative',
  'role.witness': 'Witness',
  'role.expert': 'Expert',
  'role.interpreter': 'Interpreter',
  'role.detention_officer': 'Detention officer',
  'role.observer': 'Observer',

  'site.central': 'Courtroom (central site)',
  'site.detention': 'Detention facility',
  'site.office': 'Office',
  'site.court': 'Other court',
  'site.remote': 'Other site',

  'state.label': 'Hearing state',
  'state.scheduled': 'The hearing has not started yet',
  'state.open': 'The hearing is open, about to start',
  'state.in_session': 'The hearing is in session',
  'state.suspended': 'The hearing is suspended',
  'state.adjourned': 'The hearing is adjourned',
  'state.closed': 'The hearing is closed',
  'state.adjournedTo': 'Resumes on {date}',
  'state.scheduledAt': 'Scheduled to start: {date}',
  'state.waitMedia': 'Please wait: audio and video start when the presiding judge opens the hearing.',
  'state.locked': 'The hearing is locked: no one else is admitted.',
  'state.floor': 'Has the floor: {name}',

  'conn.offline': 'Not connected',
  'conn.connecting': 'Connecting',
  'conn.connected': 'Connected',
  'conn.unstable': 'Unstable connection',

  'lobby.heading': 'You are in the waiting room',
  'lobby.body': 'The presiding judge or the court clerk will let you into the hearing. Keep this page open; your camera is not being sent yet.',
  'lobby.bodyWitness': 'You will be called into the hearing when it is your turn. Keep this page open; your camera and microphone are not being sent yet.',
  'lobby.since': 'since {time} ({n} min)',
  'lobby.title': 'Waiting room ({n})',
  'lobby.empty': 'Nobody is waiting.',
  'lobby.admit': 'Admit',
  'lobby.admitAll': 'Admit everyone',
  'lobby.deny': 'Deny',
  'lobby.callIn': 'Call in',

  'console.heading': 'Hearing controls',
  'console.participants': 'Participants by site',
  'console.mute': 'Mute',
  'console.requestUnmute': 'Ask to unmute',
  'console.spotlight': 'Give the floor',
  'console.unspotlight': 'Take the floor back',
  'console.dismiss': 'Back to waiting room',
  'console.remove': 'Remove from hearing',
  'console.lock': 'Lock the hearing',
  'console.unlock': 'Unlock the hearing',
  'console.muteAll': 'Mute everyone except the bench',
  'console.reason': 'Reason',
  'console.reasonPlaceholder': 'e.g. link to the detention facility lost',
  'console.adjournDate': 'New date',
  'console.needReason': 'Enter a reason.',
  'console.needDate': 'Choose the new date.',
  'console.open': 'Open the hearing',
  'console.start': 'Start the session',
  'console.suspend': 'Suspend',
  'console.resume': 'Resume',
  'console.adjourn': 'Adjourn',
  'console.close': 'Close the hearing',
  'console.inLobby': 'In the waiting room',
  'console.removed': 'Removed',
  'console.mutedByCourt': 'Muted',
  'console.you': 'you',

  'confirm.remove': 'Remove {name} from the hearing? Their link will stop working.',
  'confirm.close': 'Close the hearing? Everyone is disconnected and cannot rejoin.',
  'confirm.reason': 'Reason (optional)',
  'confirm.yes': 'Confirm',
  'confirm.no': 'Cancel',

  'unmute.prompt': 'The presiding judge asks you to unmute your microphone to speak.',
  'unmute.accept': 'Unmute',
  'unmute.decline': 'Stay muted',

  'controls.mutedByCourt': 'Muted by the court',
  'hearing.mutedByCourt': 'Muted by the court',
  'hearing.floor': 'Has the floor',

  'final.hearing_closed': 'The hearing is closed',
  'final.admission_denied': 'Admission refused',
  'final.removed': 'You were removed from the hearing',
  'final.link_revoked': 'Link revoked',
  'final.body': 'You may close this page.',
  'final.reason': 'Reason: {reason}',
};

export const MESSAGES: Record<Lang, Record<MessageKey, string>> = { vi, en };

let current: Lang = 'vi';

function storage(): Storage | null {
  try {
    return typeof localStorage === 'undefined' ? null : localStorage;
  } catch {
    return null;
  }
}

/** Loads the saved language (default Vietnamese). */
export function initLang(): Lang {
  const saved = storage()?.getItem(STORAGE_KEY);
  current = saved === 'en' || saved === 'vi' ? saved : 'vi';
  return current;
}

export function getLang(): Lang {
  return current;
}

export function setLang(lang: Lang): void {
  current = lang;
  try {
    storage()?.setItem(STORAGE_KEY, lang);
  } catch {
    /* private mode: not persisted */
  }
}

/** Translates `key`, replacing `{name}` placeholders from `params`. */
export function t(key: MessageKey, params: Record<string, string | number> = {}, lang: Lang = current): string {
  const text = MESSAGES[lang][key] ?? MESSAGES.vi[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name: string) =>
    name in params ? String(params[name]) : m,
  );
}

export function roleName(role: Role | string, lang: Lang = current): string {
  const key = `role.${role}` as MessageKey;
  return key in MESSAGES[lang] ? t(key, {}, lang) : String(role);
}

/** Plain-language text for a server error code; falls back to the server's message. */
export function errorText(code: ErrorCode | string, message: string, lang: Lang = current): string {
  const key = `error.${code}` as MessageKey;
  if (key in MESSAGES[lang]) return t(key, { message }, lang);
  return t('error.generic', { message: message || String(code) }, lang);
}
